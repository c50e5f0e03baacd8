"""The driver's bookkeeping: the campaign summary, groups being run and their workers.

Plain data (Ray handles and object refs are opaque here), kept apart from the loop in
llem.scheduler.driver so each file stays small.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from llem.config.grid import Group
from llem.config.job import Job
from llem.harness.runner import load_of
from llem.scheduler.placement import Need
from llem.store.run_row import RunRow


@dataclass
class Summary:
    total: int = 0  # the campaign's jobs: ok + failed + skipped + not_run
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    not_run: int = 0  # jobs left when the campaign stopped early (Ctrl-C, SIGTERM, an error)
    model_loads: int = 0
    retried: int = 0  # jobs sent again after their worker process died
    rescheduled: int = 0  # jobs sent again after their node was lost
    workers: int = 0  # worker actors started (a split group counts twice)
    interrupted: bool = False
    energy_j: float = 0.0
    output_tokens: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def count(self, run: RunRow, n: int = 1) -> None:
        """Count a stored result (n=-1: take back one that was counted but not written)."""
        if run.status == "ok":
            self.ok += n
            self.energy_j += n * (run.energy_j or 0.0)
            self.output_tokens += n * (run.output_tokens or 0)
        else:
            self.failed += n
            if n > 0:
                self.errors.append(f"{run.job_id} c{run.cycle}: {run.error}"[:300])

    def columns(self) -> dict[str, Any]:
        """The sessions table's row (llem.store.store.write_session)."""
        return {"jobs": self.total, "ok": self.ok, "failed": self.failed,
                "skipped": self.skipped, "model_loads": self.model_loads,
                "workers": self.workers, "retried": self.retried,
                "rescheduled": self.rescheduled, "interrupted": self.interrupted,
                "elapsed_s": self.elapsed_s, "energy_j": self.energy_j,
                "output_tokens": self.output_tokens}


MATERIALISE = 4096  # a group of at most this many jobs is listed up front: exact counts


@dataclass
class GroupRun:
    """A load group being run, shared by its workers. A big group's jobs stay a lazy iterator
    (a grid of a million points is never held); jobs sent back (retry, lost node) go first."""

    group: Group
    need: Need
    source: Iterator[Job]
    back: deque[Job] = field(default_factory=deque)
    taken: int = 0  # jobs pulled from source
    exhausted: bool = False
    workers: int = 0
    job_s: float | None = None  # mean wall time of its finished jobs
    load_s: float = 0.0  # its slowest model load seen
    load: dict[str, Any] = field(default_factory=dict)  # what its workers load (load_of)

    @classmethod
    def of(cls, group: Group, need: Need, jobs: Iterator[Job]) -> GroupRun:
        gr = cls(group, need, jobs, load=load_of(group.first))
        if group.size_hint <= MATERIALISE:
            gr.back = deque(jobs)
            gr.exhausted = True
        return gr

    def more(self) -> bool:
        """Whether a job is left (pulls at most one job ahead from a lazy source)."""
        if self.back:
            return True
        if self.exhausted:
            return False
        job = next(self.source, None)
        if job is None:
            self.exhausted = True
            return False
        self.taken += 1
        self.back.append(job)
        return True

    def take(self) -> Job:
        return self.back.popleft()

    def give_back(self, jobs: list[Job]) -> None:
        self.back.extendleft(reversed(jobs))

    def stop(self) -> list[Job]:
        """Run no more of this group: the jobs already pulled (listed, or tried and given
        back) are returned, to be stored as failed; the never-pulled rest of a lazy source
        is dropped, for a later run of the same command to pick up."""
        jobs = list(self.back)
        self.back.clear()
        self.source = iter(())
        return jobs

    def left(self) -> int:
        """Jobs left: exact for a listed group, at most this many for a lazy one."""
        if self.exhausted:
            return len(self.back)
        return len(self.back) + max(0, self.group.size_hint - self.taken)

    def observe(self, run: RunRow) -> None:
        s, f = run.started_at, run.finished_at
        if s is not None and f is not None:
            d = max(0.0, float(f) - float(s))
            self.job_s = d if self.job_s is None else 0.8 * self.job_s + 0.2 * d
        self.load_s = max(self.load_s, float(run.model_load_s or 0.0))


@dataclass
class Planned:
    """A group not started yet, as the shares count its work (llem.scheduler.shares): its
    size, no job timed."""

    need: Need
    size: int
    workers: int = 0
    job_s: float | None = None
    load_s: float = 0.0

    def left(self) -> int:
        return self.size


@dataclass
class Worker:
    """One actor serving a group on a node; calls run in the order they were sent."""

    run: GroupRun
    actor: Any
    node_id: str
    index: int
    ready_ref: Any
    created: float
    inflight: deque[tuple[Any, Job]] = field(default_factory=deque)
    gpus: str = ""  # its devices as the neighbour columns name them
    since: float = field(default_factory=time.time)  # when the head call probably started
    restarts: int = 0
    loads: dict[int, int] = field(default_factory=dict)  # pid -> model loads in it
    started: bool = False
    restarting: bool = False  # after a crash: no calls until it answers ready again
    pid: int | None = None  # its process, once it answered ready
    hung: bool = False  # a call of it ran past its job's timeout


def group_size(g: Group, c: Any) -> int:
    """A group's job count for longest-first order: exact where include/exclude make the
    size hint loose and the group is small enough to count quickly (c: the Campaign)."""
    if (c.include or c.exclude) and g.size_hint <= MATERIALISE:
        return sum(1 for _ in g.points()) * len(g.cycles)  # one cycle when groups interleave
    return g.size_hint


class WorkerDied(RuntimeError):
    """The cause stored in a failed row when the worker, not the job's code, failed."""


class JobTimeout(RuntimeError):
    """The cause stored in a failed row when a job ran past measurement.job_timeout_s."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]
