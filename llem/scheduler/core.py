"""Scheduling decisions, pure: no Ray, no clock, no sleeping.

Which waiting group starts next (longest first, one an idle worker can take before a fresh
process), where (llem.scheduler.placement.Books), when a running group gets one more worker
(split_gain: by time, not by a job count), and whether a job whose worker died is retried.
The Ray driver (llem.scheduler.driver) asks these on its live groups (GroupRun);
SchedulerCore answers them for a whole campaign driven by events, which is how the
simulator (llem.scheduler.sim) runs 10,000 GPUs on a simulated clock: events in (worker
started, job finished with its duration, worker died, node added or lost), decisions out
(Start, Send, Kill, Fail).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from llem.scheduler.placement import Books, Need

UNTIMED_JOBS = 2  # see split_gain
START_S = 2.0  # what a new worker costs before its model load (process, imports), roughly


class Runnable(Protocol):
    """A load group as the decisions see it (GroupRun in the driver, CoreGroup here)."""

    need: Need
    workers: int
    job_s: float | None  # mean duration of its finished jobs (None: none finished yet)
    load_s: float  # its model load, as seen

    def left(self) -> int: ...


def split_gain(g: Runnable, start_s: float, min_jobs: int = 2) -> float:
    """Seconds one more worker would take off g's finish, or 0 when it would not pay.

    g's w workers still need R = left x job_s / w each. One more, ready after c = start_s +
    load_s, finishes the lot at (left x job_s + c) / (w + 1): sooner exactly when R > c,
    whatever the job count. So a GPU never idles while a group it can serve has more work
    left per worker than a model load costs. Before any of g's jobs is timed, a free GPU
    takes it once each worker would still get UNTIMED_JOBS jobs (a measured job lasts 15 s
    or more: on a GPU that would idle anyway, the load costs energy, not time)."""
    left = g.left()
    if not g.need.gpus:  # CPU jobs measure the node's shared cores: a split would run two
        return 0.0       # of them side by side, each in the other's window
    if not g.workers or not left or left // (g.workers + 1) < min_jobs:
        return 0.0  # min_jobs (scheduling.split_min_jobs): the smallest piece worth a split
    if g.job_s is None:
        return 1e-3 * left / (g.workers + 1) if left >= UNTIMED_JOBS * (g.workers + 1) \
            else 0.0
    work = left * g.job_s
    cost = start_s + g.load_s
    per = work / g.workers
    if per <= cost:
        return 0.0
    return per - (work + cost) / (g.workers + 1)


def lpt_key(g: Runnable) -> float:
    """Longest first: a group's GPU-jobs (wider jobs weigh more; a CPU job weighs 1)."""
    return g.left() * max(1, g.need.gpus)


def next_start(pending: Sequence[Runnable], running: Mapping[Need, Iterable[Runnable]],
               books: Books, reusable: Callable[[Runnable], bool], min_jobs: int = 2
               ) -> tuple[Runnable, bool] | None:
    """The group to start one worker for now, and whether it is a split, or None.

    Waiting groups go first (each must run once anyway): of those that fit a node now, one
    an idle worker can serve (no process start), then the longest. Once none waits, the
    running group whose split gains the most, among the needs that fit a node now and share
    no kind of node with a waiting group (running: need -> its running groups; nothing is
    scanned while every GPU is busy). pending: the
    longest waiting group of each need is enough (see SchedulerCore)."""
    fit = [g for g in pending if books.can_place(g.need)]
    if fit:
        return max(fit, key=lambda g: (reusable(g), lpt_key(g))), False
    best, gain = None, 0.0
    for need, groups in running.items():
        # a split must not keep a waiting (wider) group off a node it could use
        if any(books.shares_kind(need, w.need) for w in pending) or \
                not books.can_place(need):
            continue
        for g in groups:
            s = split_gain(g, 0.0 if reusable(g) else START_S, min_jobs)
            if s > gain:
                best, gain = g, s
    return (best, True) if best is not None else None


def retry(attempts: int, retries: int) -> bool:
    """A job whose worker died on it attempts times: run it again?"""
    return attempts <= retries


# -- the event-driven core (simulator) ------------------------------------------------------

@dataclass
class CoreGroup:
    gid: int
    need: Need
    backend: str
    jobs: deque[int]
    workers: int = 0
    job_s: float | None = None
    load_s: float = 0.0

    def left(self) -> int:
        return len(self.jobs)


@dataclass
class CoreWorker:
    wid: int
    node: str
    group: CoreGroup
    job: int | None = None
    started: bool = False
    idle: bool = False


@dataclass(frozen=True)
class Start:
    worker: int
    node: str
    group: int
    reuse: bool  # an idle worker's process takes the group (no process start)


@dataclass(frozen=True)
class Send:
    worker: int
    job: int
    load: bool  # the worker's first job of this group: the model loads first


@dataclass(frozen=True)
class Kill:
    worker: int


@dataclass(frozen=True)
class Fail:
    job: int
    why: str


Decision = Start | Send | Kill | Fail


@dataclass
class SchedulerCore:
    """A campaign's groups on a cluster, driven by events; each call returns decisions."""

    books: Books
    retries: int = 2
    groups: dict[int, CoreGroup] = field(default_factory=dict)
    workers: dict[int, CoreWorker] = field(default_factory=dict)
    pending: dict[Need, list[CoreGroup]] = field(default_factory=dict)  # LPT, largest last
    attempts: dict[int, int] = field(default_factory=dict)
    # need -> gid -> its groups with a worker
    running: dict[Need, dict[int, CoreGroup]] = field(default_factory=dict)
    idle: dict[tuple[str, Need], dict[int, None]] = field(default_factory=dict)
    loads: int = 0
    events: int = 0
    _next: int = 0

    def add_groups(self, groups: Sequence[CoreGroup]) -> list[Decision]:
        for g in sorted(groups, key=lpt_key):
            self.groups[g.gid] = g
            self.pending.setdefault(g.need, []).append(g)
        return self._schedule()

    # -- events -----------------------------------------------------------------------------

    def worker_started(self, wid: int) -> list[Decision]:
        self.events += 1
        w = self.workers.get(wid)
        if w is None:
            return []
        w.started = True
        return self._feed(w, load=True) + self._schedule()

    def job_finished(self, wid: int, job: int, duration_s: float,
                     load_s: float = 0.0) -> list[Decision]:
        """duration_s: the job's own time; load_s: the model load before it (if any)."""
        self.events += 1
        w = self.workers[wid]
        g = w.group
        w.job = None
        g.job_s = duration_s if g.job_s is None else 0.8 * g.job_s + 0.2 * duration_s
        g.load_s = max(g.load_s, load_s)
        out = self._feed(w, load=False)
        if w.job is None:
            self._leave(w)
            w.idle = True
            self.idle.setdefault((g.backend, g.need), {})[wid] = None
            out += self._schedule()
            if w.idle:  # nobody took it: its GPUs are already free
                self._forget(w)
                out.append(Kill(wid))
        return out

    def worker_died(self, wid: int) -> list[Decision]:
        """The worker's process died (not its node): its job is retried or failed."""
        self.events += 1
        w = self.workers.get(wid)
        if w is None:
            return []
        out: list[Decision] = []
        if w.job is not None:
            n = self.attempts[w.job] = self.attempts.get(w.job, 0) + 1
            if retry(n, self.retries):
                w.group.jobs.appendleft(w.job)
            else:
                out.append(Fail(w.job, f"worker process died {n} times running this job"))
        self._drop(w, release=True)
        return out + self._schedule()

    def node_added(self, node: str, resources: dict[str, float]) -> list[Decision]:
        self.events += 1
        self.books.add(node, resources)
        return self._schedule()

    def node_lost(self, node: str) -> list[Decision]:
        """Every worker there is gone; the jobs they ran go back to their groups."""
        self.events += 1
        self.books.lose(node)
        for w in [w for w in self.workers.values() if w.node == node]:
            if w.job is not None:
                w.group.jobs.appendleft(w.job)
            self._drop(w, release=False)
        out: list[Decision] = []
        for need, queue in self.pending.items():
            if queue and not self.books.feasible(need):
                for g in queue:
                    out += [Fail(j, "no alive node can run this job any more") for j in g.jobs]
                    g.jobs.clear()
                queue.clear()
        return out + self._schedule()

    # -- internals --------------------------------------------------------------------------

    def _feed(self, w: CoreWorker, load: bool) -> list[Decision]:
        if not w.started or w.job is not None or not w.group.jobs:
            return []
        w.job = w.group.jobs.popleft()
        if load:
            self.loads += 1
        return [Send(w.wid, w.job, load)]

    def _reusable(self, g: Runnable) -> bool:
        assert isinstance(g, CoreGroup)
        return bool(self.idle.get((g.backend, g.need)))

    def _schedule(self) -> list[Decision]:
        out: list[Decision] = []
        while True:
            heads = [q[-1] for q in self.pending.values() if q]
            pick = next_start(heads, {k: v.values() for k, v in self.running.items()},
                              self.books, self._reusable)
            if pick is None:
                return out
            g, split = pick
            assert isinstance(g, CoreGroup)
            if not split:
                self.pending[g.need].pop()
            idle = self.idle.get((g.backend, g.need))
            reuse = next(iter(idle)) if idle else None
            if reuse is not None:
                assert idle is not None
                del idle[reuse]
                w = self.workers[reuse]
                w.idle = False
                node = self.books.place(g.need, w.node)
                if node != w.node:  # its own node has no room: a fresh process elsewhere
                    if node is not None:
                        self.books.release(node, g.need)
                    self._forget(w)
                    out.append(Kill(reuse))
                    reuse = None
            if reuse is None:
                node = self.books.place(g.need)
                assert node is not None
                w = CoreWorker(self._next, node, g)
                self._next += 1
                self.workers[w.wid] = w
            w.group = g
            g.workers += 1
            self.running.setdefault(g.need, {})[g.gid] = g
            out.append(Start(w.wid, w.node, g.gid, reuse is not None))
            if reuse is not None:
                out += self._feed(w, load=True)

    def _leave(self, w: CoreWorker) -> None:
        """w no longer serves its group; its resources are released."""
        g = w.group
        g.workers -= 1
        if not g.workers:
            self.running.get(g.need, {}).pop(g.gid, None)
        self.books.release(w.node, g.need)

    def _forget(self, w: CoreWorker) -> None:
        self.idle.get((w.group.backend, w.group.need), {}).pop(w.wid, None)
        self.workers.pop(w.wid, None)

    def _drop(self, w: CoreWorker, release: bool) -> None:
        if w.idle:
            self._forget(w)
            return
        g = w.group
        g.workers -= 1
        if release:
            self.books.release(w.node, g.need)
        self.workers.pop(w.wid, None)
        if not g.workers:
            self.running.get(g.need, {}).pop(g.gid, None)
            if g.jobs:  # no worker left: it waits for a node again, first of its need
                self.pending.setdefault(g.need, []).append(g)
