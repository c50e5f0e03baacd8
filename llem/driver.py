"""The Ray driver: groups -> worker actors -> results streamed into the store.

One actor per load group (the model loads once per group); a group's jobs are fed to its
actor a couple at a time; each result is written the moment it arrives (ray.wait loop).
Jobs already stored with status ok are skipped, so re-running a campaign resumes it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from llem.config.load import Loaded
from llem.dataset import load_prompts
from llem.envs import preflight
from llem.errors import UserError
from llem.grid import Group, Job, canonical, groups
from llem.results import failed_result
from llem.store import Store
from llem.worker import NAMESPACE, start_worker

PIPELINE = 2  # calls queued per actor, so the next job starts without a driver round trip


@dataclass
class Summary:
    total: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    model_loads: int = 0
    energy_j: float = 0.0
    output_tokens: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass
class _Active:
    """A running group: its actor, its remaining jobs, its calls in flight."""

    group: Group
    actor: Any
    jobs: Iterator[Job]
    needs: tuple[float, float]  # (gpus, cpus) reserved while it lives
    inflight: int = 0
    exhausted: bool = False
    loads: int = 0


def connect(address: str | None, num_cpus: int | None = None, num_gpus: int | None = None,
            dashboard: bool = False) -> str:
    """Join the cluster at address/RAY_ADDRESS, else start an embedded local Ray."""
    if ray.is_initialized():
        return "existing"
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        ray.init(address=target, namespace=NAMESPACE, logging_level=logging.ERROR,
                 log_to_driver=False)
        return target
    # address="local": always a new Ray, never one another process on this host started
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, namespace=NAMESPACE,
             include_dashboard=dashboard, logging_level=logging.ERROR, log_to_driver=False)
    return "embedded"


def _capacity() -> tuple[float, float]:
    res = ray.cluster_resources()
    return float(res.get("GPU", 0)), float(res.get("CPU", 0))


def _needs(g: Group) -> tuple[float, float]:
    r = g.first.resources
    return (float(r.gpus_per_job), r.cpus_per_job if r.gpus_per_job == 0 else 0.0)


class Driver:
    """Runs one campaign to completion; on_result is called after each stored result."""

    def __init__(self, loaded: Loaded, store: Store,
                 on_result: Callable[[dict[str, Any], Summary], None] | None = None,
                 runtime_envs: dict[str, dict[str, Any]] | None = None) -> None:
        self.loaded = loaded
        # each backend's Ray runtime_env; a missing or broken one is a UserError here
        self.runtime_envs = runtime_envs if runtime_envs is not None else preflight(
            loaded.campaign.backends, loaded.campaign.environments)
        self.campaign = loaded.campaign.name
        self.store = store
        self.on_result = on_result or (lambda r, s: None)
        self.summary = Summary()
        self.base_dir = loaded.path.resolve().parent if loaded.path else Path.cwd()
        self._prompts: dict[str, Any] = {}
        self._inflight: dict[Any, tuple[_Active, Job]] = {}
        self._active: list[_Active] = []

    def prompts_ref(self, job: Job) -> Any:
        key = canonical(job.point.dataset.model_dump(mode="json"))
        if key not in self._prompts:
            self._prompts[key] = ray.put(load_prompts(job.point.dataset, self.base_dir))
        return self._prompts[key]

    def run(self) -> Summary:
        t0 = time.perf_counter()
        done = self.store.done(self.campaign)
        total_gpus, total_cpus = _capacity()
        free = [total_gpus, total_cpus]
        pending = groups(self.loaded)
        next_group: Group | None = None
        index = 0
        try:
            while True:
                # Start groups while their resources fit.
                while True:
                    if next_group is None:
                        next_group = next(pending, None)
                        if next_group is None:
                            break
                    gpus, cpus = _needs(next_group)
                    if gpus > total_gpus or (gpus == 0 and cpus > total_cpus):
                        raise UserError(
                            f"jobs of {next_group.first.backend}/{next_group.first.model} need "
                            f"{gpus:g} GPUs and {cpus:g} CPUs; the cluster has {total_gpus:g} "
                            f"GPUs and {total_cpus:g} CPUs (resources.gpus_per_job)")
                    if gpus > free[0] or cpus > free[1]:
                        break
                    jobs = self._pending_jobs(next_group, done)
                    first = next(jobs, None)
                    if first is not None:
                        self.prompts_ref(first)  # bad prompt files fail before any actor
                        actor = start_worker(self.campaign, next_group, index,
                                             self.runtime_envs.get(next_group.first.backend))
                        index += 1
                        free[0] -= gpus
                        free[1] -= cpus
                        self._active.append(_Active(next_group, actor, _chain(first, jobs),
                                                    (gpus, cpus)))
                    next_group = None
                for a in self._active:
                    self._feed(a)
                if not self._inflight:
                    break
                ready, _ = ray.wait(list(self._inflight), num_returns=1, timeout=1.0)
                for ref in ready:
                    self._collect(ref)
                for a in [a for a in self._active if a.exhausted and not a.inflight]:
                    self._retire(a)
                    free[0] += a.needs[0]
                    free[1] += a.needs[1]
        finally:
            for a in self._active:
                ray.kill(a.actor)
            self._active.clear()
            self.summary.elapsed_s = time.perf_counter() - t0
        return self.summary

    def _pending_jobs(self, group: Group, done: set[tuple[str, int]]) -> Iterator[Job]:
        for job in group.jobs():
            self.summary.total += 1
            if job.key in done:
                self.summary.skipped += 1
                continue
            yield job

    def _feed(self, a: _Active) -> None:
        while not a.exhausted and a.inflight < PIPELINE:
            job = next(a.jobs, None)
            if job is None:
                a.exhausted = True
                break
            ref = a.actor.run.remote(job.payload(), self.prompts_ref(job))
            self._inflight[ref] = (a, job)
            a.inflight += 1

    def _collect(self, ref: Any) -> None:
        a, job = self._inflight.pop(ref)
        a.inflight -= 1
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as exc:  # the worker process died
            result = failed_result(job, exc, str(exc), {}, time.time())
            a.exhausted = True  # its actor is gone; the group's remaining jobs are dropped
            self.summary.errors.append(f"worker for {job.point.model} died: {exc}"[:300])
        run = result["run"]
        self.store.write_result(result)
        s = self.summary
        if run["status"] == "ok":
            s.ok += 1
            s.energy_j += run.get("energy_j") or 0.0
            s.output_tokens += run.get("output_tokens") or 0
        else:
            s.failed += 1
            s.errors.append(f"{job.job_id} c{job.cycle}: {run['error']}"[:300])
        a.loads = max(a.loads, run.get("model_loads") or 0)
        self.on_result(run, s)

    def _retire(self, a: _Active) -> None:
        self.summary.model_loads += a.loads
        ray.kill(a.actor)
        self._active.remove(a)


def _chain(first: Job, rest: Iterator[Job]) -> Iterator[Job]:
    yield first
    yield from rest
