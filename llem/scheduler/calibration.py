"""Cross-GPU calibration at a campaign's start (measurement.calibrate): one reference job on
every GPU set of the cluster, through the campaign's own worker actors, and the factors
that normalise each row as the driver stores it (llem.measure.calibration has the method).

The reference job is the campaign's first GPU configuration's first job (the first load
group in grid order whose point sets measurement.calibrate), run as it is: the same
model, prompts, batches and tokens on every GPU, measured by the harness like any job
(idle baseline, warmup, window, validity). Every node's GPUs are split into sets of the
reference's gpus_per_job (GPUs left over are not calibrated) and one worker per set is
started at once, so each holds its own GPUs and all run under the same conditions. Their
rows are stored in campaign `<campaign>.calibration`, one cycle per GPU set; each session
that runs a job calibrates again, just before its first worker starts (a resumed campaign
may run on other GPUs; one with nothing left to run calibrates nothing). The driver's store
writer (CalibratedWriter) then normalises every row as it is queued.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from llem.config.campaign import CALIBRATION_SUFFIX
from llem.config.loaded import Loaded
from llem.measure.calibration import Factor, factors, normalised, readings, reference_job
from llem.scheduler.placement import Books, Need, gpu_sets_of
from llem.scheduler.state import first_line
from llem.scheduler.worker import start_worker
from llem.store.run_row import Result, RunRow
from llem.store.store import Store
from llem.store.writer import StoreWriter

NEEDED = ("gpu_uuids", "gpu_energy_j_per_gpu", "energy_j", "energy_per_token_j")


class Driving(Protocol):
    """What calibration needs of the driver (llem.scheduler.driver.Driver)."""

    loaded: Loaded
    store: Store
    books: Books
    runtime_envs: dict[str, dict[str, Any]]
    on_event: Callable[[str], None]

    def prompts_ref(self, job: Any) -> Any: ...


class Calibration:
    """The session's factors (GPU UUID -> Factor); apply() adds the calibration columns to a
    row. Without calibration (off, or no GPU) it has none and apply() does nothing."""

    def __init__(self, known: dict[str, Factor] | None = None, reference: str | None = None
                 ) -> None:
        self.factors = known or {}
        self.reference = reference

    def apply(self, run: RunRow) -> None:
        if not self.factors or run.status != "ok":
            return
        cols = normalised({k: getattr(run, k) for k in NEEDED}, self.factors)
        if cols:
            cols["calibration_reference"] = self.reference
        for k, v in cols.items():
            setattr(run, k, v)


def gpu_sets(books: Books, need: Need) -> list[str]:
    """One node id per set of need.gpus GPUs, over every alive node the reference fits."""
    return gpu_sets_of({i: n.total for i, n in books.nodes.items() if n.alive}, need)


def calibrate(d: Driving) -> Calibration:
    """Run the reference job on every GPU set at once, store its rows, and return the
    factors (none when calibration is off; a set whose job failed gets none)."""
    c = d.loaded.campaign
    asked, group, job = reference_job(d.loaded)
    if job is None:
        if asked:
            d.on_event("calibration: no configuration uses a GPU, nothing to calibrate")
        return Calibration()
    p = job.point
    name = c.name + CALIBRATION_SUFFIX
    sets = gpu_sets(d.books, Need.of(p.resources))
    if not sets:  # the driver refused a grid no node can run before this
        return Calibration()
    d.on_event(f"calibration: reference job {job.job_id} ({p.backend}, {p.model}) on "
               f"{len(sets)} GPU sets")
    actors = [start_worker(name, group, i, d.runtime_envs.get(p.backend),
                           NodeAffinitySchedulingStrategy(node, soft=False))
              for i, node in enumerate(sets)]
    rows = []
    try:
        refs = []
        for i, actor in enumerate(actors):
            payload = {**job.payload(), "campaign": name, "cycle": i}
            refs.append(actor.run.remote(payload, d.prompts_ref(job), None))
        limit = c.scheduling.start_timeout_s + p.measurement.job_timeout_s
        ready, late = ray.wait(refs, num_returns=len(refs), timeout=limit)
        for ref in ready:
            try:
                result: Result = ray.get(ref)
            except ray.exceptions.RayError as exc:
                d.on_event(f"calibration: a reference job failed: {first_line(exc)}")
                continue
            d.store.write_result(result)
            rows.append(result.run.row())
        if late:
            d.on_event(f"calibration: {len(late)} reference jobs did not finish within "
                       f"{limit:g} s: their GPUs are not calibrated")
    finally:
        for actor in actors:
            ray.kill(actor)
    known = factors(readings(rows))
    d.on_event("calibration factors: " + (", ".join(
        f"{u} {f.factor:.4f}" for u, f in sorted(known.items())) or "none"))
    session = d.store.session_id
    return Calibration(known, f"{name} job {job.job_id} session {session}")



class CalibratedWriter(StoreWriter):
    """The campaign's store writer: each row gets its calibration columns as it is queued
    (none until the driver sets calibration, from calibrate())."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.calibration = Calibration()

    def put(self, result: Result) -> None:
        self.calibration.apply(result.run)
        super().put(result)
