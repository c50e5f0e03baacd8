"""A load group (the jobs one model load serves) and the order groups run in.

With cycles interleaved across groups (llem.config.order.across_groups) the unit the driver
queues is one group's one cycle: cycle 0 of every group runs before cycle 1 of any, each
a model load (a reused worker switches models in its process). planned() gives the
driver's queue order and each group's first timeline_index.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from llem.config.job import Job, job_id_of
from llem.config.models import Point
from llem.config.order import arranged


@dataclass
class Group:
    """Jobs that share a load key: one worker loads the model once and runs them all."""

    load_key: str
    first: Point  # any point of the group: what to load
    size_hint: int  # upper bound on jobs (before include/exclude and dedupe)
    _points: Any = field(repr=False, default=None)  # () -> Iterator[Point]
    _cycles: int = 1  # the campaign's cycles
    _order: str = "interleaved"
    _seed: int | None = None
    _campaign: str = ""
    cycle: int | None = None  # the one cycle it runs (interleave: groups); None: every one
    slot: int = 0  # its place among its cycle's groups (order: shuffled or williams)
    start: int = 0  # its first job's timeline_index (planned)

    @property
    def cycles(self) -> range:
        """The cycles whose jobs this group holds."""
        return range(self._cycles) if self.cycle is None else range(self.cycle, self.cycle + 1)

    @property
    def wave(self) -> int:
        """Groups of a lower wave are queued first: the cycle, when groups interleave."""
        return self.cycle or 0

    @property
    def wave_order(self) -> tuple[int, int]:
        """The driver's first preference among waiting groups that fit a node now (the
        highest starts): a lower wave, then slot, first (interleave, order)."""
        return -self.wave, -self.slot

    def points(self) -> Iterator[Point]:
        """The group's distinct points (each is a job per cycle)."""
        points: Iterator[Point] = self._points()
        return points

    def jobs(self) -> Iterator[Job]:
        """The group's jobs in the order they run, numbered from start (timeline_index):
        by cycle (every point of cycle 0, then cycle 1, ...; within a cycle as the order
        says), or each point's cycles back to back (sequential)."""
        seed = self._seed if self._order == "shuffled" else None
        for i, (p, c) in enumerate(self._pairs()):
            yield Job(self._campaign, p, c, job_id_of(p), self.load_key, self._order, seed,
                      self.start + i)

    def _pairs(self) -> Iterator[tuple[Point, int]]:
        order = self._order
        if order == "sequential":
            for p in self._points():
                for c in self.cycles:
                    yield p, c
        elif order == "shuffled" and self.cycle is None:  # every cycle's jobs shuffled
            pairs = [(p, c) for c in self.cycles for p in self._points()]
            random.Random(f"{self._seed or 0}:{self.load_key}").shuffle(pairs)
            yield from pairs
        elif order in ("shuffled", "williams"):  # materialised: a permutation per cycle
            points = list(self._points())
            for c in self.cycles:
                key = f"{self._seed or 0}:{self.load_key}:{c}"
                yield from ((p, c) for p in arranged(points, c, order, key))
        else:
            for c in self.cycles:
                for p in self._points():
                    yield p, c


def per_cycle(groups: list[Group], cycles: int, order: str, seed: int | None
              ) -> Iterator[Group]:
    """Each group split into one group per cycle, cycle 0 of every group first; within a
    cycle the groups keep their order (interleaved: the driver's longest first), or are
    shuffled (seeded) or take row c of the Williams design (their slot)."""
    for c in range(cycles):
        run = arranged(list(range(len(groups))), c, order, f"{seed or 0}:groups:{c}")
        slots = dict.fromkeys(run, 0) if order == "interleaved" else \
            {g: s for s, g in enumerate(run)}
        for i, g in enumerate(groups):
            yield dataclasses.replace(g, size_hint=g.size_hint // max(1, g._cycles), cycle=c,
                                      slot=slots[i])


def planned(groups: Iterable[Group], size: Callable[[Group], int]) -> list[Group]:
    """The groups in the driver's queue order: by wave (cycle 0 of every group first when
    groups interleave), then slot, then longest first (size: a group's job count, an upper
    bound); each group's start is its first job's place in the campaign's timeline."""
    sized = sorted(((g, size(g)) for g in groups), key=lambda t: (t[0].wave, t[0].slot, -t[1]))
    start = 0
    for g, n in sized:
        g.start = start
        start += n
    return [g for g, _ in sized]
