"""The scheduling core: a campaign's groups on a cluster, driven by events, no Ray, no clock.

Events in (worker started, job finished with its duration, worker died, node added or
lost), decisions out (Start, Send, Kill, Fail). The decisions themselves are
llem.scheduler.decide's (LPT order, splits by time to the group that would finish last,
retries, which wide groups nodes are drained for), placement is
llem.scheduler.placement.Books, each GPU type's share for the groups tied to it
llem.scheduler.shares, the nodes kept for a starved wide group llem.scheduler.drains. The
simulator (llem.scheduler.sim) runs 10,000 GPUs on a simulated clock through it; the Ray
driver (llem.scheduler.driver) asks the same decisions, shares and drains included, on its
live groups in its own loop (not this one).

Every per-event cost is bounded by the needs (distinct resource shapes, a dozen) and the
kinds of node, not by the GPUs, nodes or groups: running groups are ranked per need by when
they would finish (decide.remaining, in an indexed heap: llem.scheduler.ranked); workers
are indexed by node; at most DRAINS nodes a need are kept.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from llem.scheduler.decide import (
    SCAN,
    START_S,
    Runnable,
    fault,
    lpt_key,
    next_start,
    remaining,
    retry,
    split_gain,
)
from llem.scheduler.drains import Drains
from llem.scheduler.placement import Books, Need
from llem.scheduler.ranked import Ranked
from llem.scheduler.shares import Shares, gpus_per_type

__all__ = ["START_S", "CoreGroup", "Decision", "Fail", "Kill", "Runnable", "SchedulerCore",
           "Send", "Start", "fault", "next_start", "remaining", "retry", "split_gain"]


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
    min_jobs: int = 1  # scheduling.split_min_jobs
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
    _on_node: dict[str, dict[int, None]] = field(default_factory=dict)  # node -> workers
    # need -> its running groups a split shortens, the one to finish last first (decide.
    # remaining; llem.scheduler.ranked)
    _rank: dict[Need, Ranked] = field(default_factory=dict)
    _kinds: dict[tuple[tuple[str, float], ...], float] = field(default_factory=dict)  # GPUs
    _shares: Shares = field(default_factory=Shares)  # see llem.scheduler.shares
    _drains: Drains = field(init=False)  # nodes kept: llem.scheduler.drains

    def __post_init__(self) -> None:
        self._drains = Drains(self.books, self._busy)

    def add_groups(self, groups: Sequence[CoreGroup]) -> list[Decision]:
        if not self._kinds:
            for n in self.books.nodes.values():
                if n.alive:
                    self._count(n.total, 1)
        for g in sorted(groups, key=lpt_key):
            self.groups[g.gid] = g
            self.pending.setdefault(g.need, []).append(g)
            self._touch(g)
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
        self._touch(g)
        out = [] if self._drains.evict(w.node, g) else self._feed(w, load=False)
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
            if fault(n, self.retries, node_lost=False) == "retry":
                w.group.jobs.appendleft(w.job)
            else:
                out.append(Fail(w.job, f"worker process died {n} times running this job"))
        self._drop(w, release=True)
        return out + self._schedule()

    def node_added(self, node: str, resources: dict[str, float]) -> list[Decision]:
        self.events += 1
        if node not in self.books.nodes:
            self._count(resources, 1)
        self.books.add(node, resources)
        return self._schedule()

    def node_lost(self, node: str) -> list[Decision]:
        """Every worker there is gone; the jobs they ran go back to their groups."""
        self.events += 1
        if node in self.books.nodes and self.books.nodes[node].alive:
            self._count(self.books.nodes[node].total, -1)
        self.books.lose(node)
        for wid in list(self._on_node.pop(node, {})):
            w = self.workers[wid]
            if w.job is not None and fault(0, self.retries, node_lost=True) == "requeue":
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

    def _count(self, total: Mapping[str, float], n: int) -> None:
        """Alive GPUs per kind of node (its resource totals), for the type shares."""
        kind = tuple(sorted((k, float(v)) for k, v in total.items() if not k.startswith("node:")))
        self._kinds[kind] = self._kinds.get(kind, 0.0) + n * float(total.get("GPU", 0.0))
        self._shares.gpus = gpus_per_type(self._kinds)

    def _touch(self, g: CoreGroup) -> None:
        """g's jobs, workers or timing changed: its rank is set again (O(log n))."""
        self._shares.touch(g.gid, g)
        rank = self._rank.setdefault(g.need, Ranked())
        if g.workers and g.jobs and split_gain(g, START_S, self.min_jobs) > 0:
            rank.set(g.gid, remaining(g))
        else:
            rank.drop(g.gid)

    def _avoid(self, need: Need) -> frozenset[str]:
        """The accelerator types need must keep off now (llem.scheduler.shares)."""
        return self._shares.off(need)

    def _busy(self, node: str) -> Iterator[CoreGroup]:
        """The groups of node's busy workers, one entry per worker (llem.scheduler.drains)."""
        return (self.workers[wid].group for wid in self._on_node.get(node, {})
                if not self.workers[wid].idle)

    def _hold(self, w: CoreWorker, sign: int) -> None:
        """w takes (sign 1) or frees (-1) its GPUs, for llem.scheduler.shares."""
        self._shares.hold_at(self.books, w.node, w.group.need, sign)

    def _ranked(self, need: Need) -> Iterator[CoreGroup]:
        """need's running groups with jobs left, largest split gain first, SCAN at most."""
        rank = self._rank.get(need)
        return (self.groups[gid] for gid in rank.first(SCAN)) if rank else iter(())

    def _feed(self, w: CoreWorker, load: bool) -> list[Decision]:
        if not w.started or w.job is not None or not w.group.jobs:
            return []
        w.job = w.group.jobs.popleft()
        self._touch(w.group)
        if load:
            self.loads += 1
        return [Send(w.wid, w.job, load)]

    def _reusable(self, g: Runnable) -> bool:
        assert isinstance(g, CoreGroup)
        return bool(self.idle.get((g.backend, g.need)))

    def _join(self, w: CoreWorker, g: CoreGroup) -> None:
        w.group = g
        g.workers += 1
        self._hold(w, 1)
        self.running.setdefault(g.need, {})[g.gid] = g
        self._touch(g)

    def _schedule(self) -> list[Decision]:
        out: list[Decision] = []
        while True:
            heads = [q[-1] for q in self.pending.values() if q]
            ranked = {need: self._ranked(need) for need in self.running}
            pick = next_start(heads, ranked, self.books, self._reusable, self.min_jobs,
                              self.books.scarcity, self._avoid)
            if pick is None:
                ranked = {need: self._ranked(need) for need in self.running}
                self._drains.keep(heads, ranked, self.min_jobs, self._avoid)
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
                node = self.books.place(g.need, w.node, self._avoid(g.need))
                if node != w.node:  # its own node has no room: a fresh process elsewhere
                    if node is not None:
                        self.books.release(node, g.need)
                    self._forget(w)
                    out.append(Kill(reuse))
                    reuse = None
            if reuse is None:
                node = self.books.place(g.need, avoid=self._avoid(g.need))
                assert node is not None
                w = CoreWorker(self._next, node, g)
                self._next += 1
                self.workers[w.wid] = w
                self._on_node.setdefault(node, {})[w.wid] = None
            self._join(w, g)
            out.append(Start(w.wid, w.node, g.gid, reuse is not None))
            if reuse is not None:
                out += self._feed(w, load=True)

    def _leave(self, w: CoreWorker) -> None:
        """w no longer serves its group; its resources are released."""
        g = w.group
        g.workers -= 1
        self._hold(w, -1)
        if not g.workers:
            self.running.get(g.need, {}).pop(g.gid, None)
            if g.jobs:  # its last worker left a draining node: it waits for a node again
                self.pending.setdefault(g.need, []).append(g)
        self._touch(g)
        self.books.release(w.node, g.need)

    def _forget(self, w: CoreWorker) -> None:
        self.idle.get((w.group.backend, w.group.need), {}).pop(w.wid, None)
        self.workers.pop(w.wid, None)
        self._on_node.get(w.node, {}).pop(w.wid, None)

    def _drop(self, w: CoreWorker, release: bool) -> None:
        if w.idle:
            self._forget(w)
            return
        g = w.group
        g.workers -= 1
        self._hold(w, -1)
        if release:
            self.books.release(w.node, g.need)
        self._forget(w)
        self._touch(g)
        if not g.workers:
            self.running.get(g.need, {}).pop(g.gid, None)
            if g.jobs:  # no worker left: it waits for a node again, first of its need
                self.pending.setdefault(g.need, []).append(g)

