"""Nodes drained for a starved wide group: the simulated core's and the Ray driver's.

A wide group (2+ GPUs a worker) that no node has room for would otherwise wait until the
narrow workers on some node all end by chance: free GPUs scattered one or two a node never
add up to a wide worker's. So while decide.starved names it, up to DRAINS nodes are kept
for it (Books.reserve: nothing else is placed there), and the workers of other groups on a
kept node leave it after their current job when their group, one worker short, still
finishes before the starved one (a group's last worker stays). A worker is never stopped
mid-job: evict is asked between two jobs.

Both callers hand over what is on a node as the groups of its busy workers (busy(node),
one entry per worker): llem.scheduler.core.SchedulerCore from its per-node index,
llem.scheduler.driver.Driver from its pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from llem.scheduler.decide import PRIOR_S, Runnable, remaining, starved
from llem.scheduler.placement import EPS, Books, Need

DRAINS = 8  # nodes kept for one need at once at most: a call's cost stays bounded

Busy = Callable[[str], Iterable[Runnable]]  # node -> the groups of its busy workers


@dataclass
class Drains:
    """The wide groups nodes are kept for now (one per need) and the nodes kept
    (books.held)."""

    books: Books
    busy: Busy
    starved: dict[Need, Runnable] = field(default_factory=dict)

    def keep(self, pending: Sequence[Runnable], running: Mapping[Need, Iterable[Runnable]],
             min_jobs: int, avoid: Callable[[Need], frozenset[str]]) -> None:
        """Keep nodes for the wide groups that should have the next worker (decide.starved,
        asked when no worker can start now) while no node has room for them: for each, one
        more node each call while the free GPUs of the nodes that can run it add up to one
        more of its workers. A node whose workers cannot all leave is not kept."""
        self.starved = {}
        for g in starved(pending, running, self.books, min_jobs, avoid):
            self.starved[g.need] = g
        held = self.books.held
        for node in [n for n, need in held.items()
                     if need not in self.starved or not self.drainable(n, need)]:
            del held[node]
        for need in self.starved:
            kept = sum(1 for n in held.values() if n == need)
            if kept < min(DRAINS, 1 + self.books.free_gpus(need) // need.gpus):
                self.books.reserve(need, avoid(need), partial(self._undrainable, need))

    def evict(self, node: str, g: Runnable) -> bool:
        """Whether a worker of g on node, between two jobs, leaves g: node is kept for a
        starved group, and g, one worker short, would still finish before it."""
        need = self.books.held.get(node)
        if need is None or need == g.need or g.workers < 2 or need not in self.starved:
            return False
        short = g.left() / (g.workers - 1) * (PRIOR_S if g.job_s is None else g.job_s)
        return short < remaining(self.starved[need])

    def drainable(self, node: str, need: Need) -> bool:
        """Whether node, not free enough for need now, would be once the workers of other
        groups that have another worker left it (a group's last worker stays)."""
        n = self.books.nodes[node]
        gpus = n.free.get("GPU", 0.0)
        here: dict[int, int] = {}
        for g in self.busy(node):
            if g.need != need and here.get(id(g), 0) < g.workers - 1:
                here[id(g)] = here.get(id(g), 0) + 1
                gpus += g.need.gpus
        return gpus + EPS >= need.gpus > n.free.get("GPU", 0.0)

    def _undrainable(self, need: Need, node: str) -> bool:
        return not self.drainable(node, need)
