"""Where a campaign's GPU time outside jobs goes, read back from the store's runs rows.

Each GPU set (node_id, visible_devices) is a slot. Along a slot, sorted by started_at:

    startup        campaign start -> the slot's first job (worker process start, first load)
    between jobs   one job's end -> the next job's start on the same worker and load group
                   (the driver's round trip: result back, next call out)
    between groups one job's end -> the next job's start after a change of worker process
                   or load group (a fresh worker, or a reused one loading the next model)
    tail           the slot's last job -> campaign end (nothing left for it: packing)
    in jobs        a job's wall time (started_at..finished_at) beyond its nominal duration:
                   the harness's own work, and model loads (a group's first job loads it)
    unused         slots that ran no job at all

They add up to GPUs x makespan - sum of nominal durations, the figure the makespan
benchmarks divide by the job count.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Idle:
    """Seconds of GPU time outside jobs, by cause; counts for the per-event means."""

    slots: int = 0
    jobs: int = 0
    startup_s: float = 0.0
    between_jobs_s: float = 0.0
    job_switches: int = 0
    between_groups_s: float = 0.0
    group_switches: int = 0
    tail_s: float = 0.0
    in_jobs_s: float = 0.0
    unused_s: float = 0.0
    processes: set[int] = field(default_factory=set)

    @property
    def scheduling_s(self) -> float:
        """What the scheduler costs: round trips, load-group switches and the slots' tails
        (packing); not the worker processes' start nor the harness's time in a job."""
        return self.between_jobs_s + self.between_groups_s + self.tail_s

    @property
    def total_s(self) -> float:
        return (self.startup_s + self.between_jobs_s + self.between_groups_s + self.tail_s
                + self.in_jobs_s + self.unused_s)

    def line(self) -> str:
        """One line a user can read: the mean of each kind of gap and its share per job."""
        n = max(1, self.jobs)
        per = (lambda s: f"{s / n * 1e3:.1f} ms/job")  # noqa: E731
        return (f"GPU time outside jobs {per(self.total_s)}: startup "
                f"{self.startup_s / max(1, self.slots):.2f} s per slot ({per(self.startup_s)}),"
                f" between jobs {self.between_jobs_s / max(1, self.job_switches) * 1e3:.1f} ms"
                f" ({per(self.between_jobs_s)}), between groups "
                f"{self.between_groups_s / max(1, self.group_switches):.2f} s x "
                f"{self.group_switches} ({per(self.between_groups_s)}), tail "
                f"{per(self.tail_s)}, in jobs {per(self.in_jobs_s)}, unused slots "
                f"{per(self.unused_s)}; {len(self.processes)} worker processes")


def breakdown(rows: list[dict[str, Any]], start: float, end: float, gpus: int,
              nominal_s: float) -> Idle:
    """rows: runs rows with s, f (epoch seconds), node_id, visible_devices, worker_pid,
    load_key; start/end: the campaign's wall clock (time.time()); nominal_s: the sum of the
    jobs' nominal durations."""
    slots: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        slots.setdefault((r["node_id"], r["visible_devices"]), []).append(r)
    out = Idle(slots=len(slots), jobs=len(rows))
    out.unused_s = max(0, gpus - len(slots)) * (end - start)
    out.in_jobs_s = sum(r["f"] - r["s"] for r in rows) - nominal_s
    for runs in slots.values():
        runs.sort(key=lambda r: r["s"])
        out.startup_s += runs[0]["s"] - start
        out.tail_s += end - runs[-1]["f"]
        for a, b in itertools.pairwise(runs):
            gap = b["s"] - a["f"]
            if (a["worker_pid"], a["load_key"]) == (b["worker_pid"], b["load_key"]):
                out.between_jobs_s += gap
                out.job_switches += 1
            else:
                out.between_groups_s += gap
                out.group_switches += 1
        out.processes.update(r["worker_pid"] for r in runs)
    return out


def from_store(store: Any, campaign: str, start: float, end: float, gpus: int,
               nominal_s: float) -> Idle:
    """The breakdown of one campaign in a llem Store (through DuckDB, or where it is not
    installed, as on the GPU machines, pyarrow over the campaign's runs files)."""
    try:
        from llem.store.query import run_sql
    except ImportError:
        import pyarrow.dataset as ds

        cols = ["started_at", "finished_at", "node_id", "visible_devices", "worker_pid",
                "load_key"]
        table = ds.dataset(store.path("runs", f"campaign={campaign}"), format="parquet",
                           filesystem=store.fs).to_table(columns=cols)
        rows = [{**r, "s": r["started_at"].timestamp(), "f": r["finished_at"].timestamp()}
                for r in table.to_pylist()]
    else:
        rows = run_sql(store, "SELECT epoch(started_at) AS s, epoch(finished_at) AS f, "
                       "node_id, visible_devices, worker_pid, load_key FROM runs "
                       f"WHERE campaign = '{campaign}'").to_pylist()
    return breakdown(rows, start, end, gpus, nominal_s)
