"""Lazy expansion of a campaign into load groups and jobs.

Axes that change what a worker loads (model, dtype, engine args, resources) are crossed
outside; the others inside. So a group (one model load) is known before any of its jobs is
built, and a grid of a million points is never held in memory.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from llem.config.axes import Alternative, Axis, resolve
from llem.config.job import Job, canonical, job_id_of, load_key_of
from llem.config.loaded import Loaded
from llem.config.models import Point, Server


@dataclass
class Group:
    """Jobs that share a load key: one worker loads the model once and runs them all."""

    load_key: str
    first: Point  # any point of the group: what to load
    size_hint: int  # upper bound on jobs (before include/exclude and dedupe)
    _points: Any = field(repr=False, default=None)  # () -> Iterator[Point]
    _cycles: int = 1
    _order: str = "interleaved"
    _seed: int | None = None
    _campaign: str = ""

    def points(self) -> Iterator[Point]:
        """The group's distinct points (each is a job per cycle)."""
        points: Iterator[Point] = self._points()
        return points

    def jobs(self) -> Iterator[Job]:
        """The group's jobs; cycles interleaved (all points of cycle 0, then cycle 1, ...)."""
        seed = self._seed if self._order == "shuffled" else None

        def make(p: Point, c: int) -> Job:
            return Job(self._campaign, p, c, job_id_of(p), self.load_key, self._order, seed)

        if self._order == "sequential":
            for p in self._points():
                for c in range(self._cycles):
                    yield make(p, c)
        elif self._order == "shuffled":
            jobs = [make(p, c) for c in range(self._cycles) for p in self._points()]
            random.Random(f"{seed or 0}:{self.load_key}").shuffle(jobs)
            yield from jobs
        else:
            for c in range(self._cycles):
                for p in self._points():
                    yield make(p, c)


def _matches(values: Alternative, rule: dict[str, Any]) -> bool:
    for path, want in rule.items():
        have = values.get(path)
        if isinstance(want, list) and not isinstance(have, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


def count_points(loaded: Loaded) -> int:
    """Upper bound on distinct points (exact unless include/exclude/dedupe remove some)."""
    total = 0
    for b in loaded.campaign.backends:
        axes = _axes_for(loaded.axes, b)
        total += math.prod(len(a.alternatives) for a in axes)
    return total * _sweep_factor(loaded)


def _sweep_factor(loaded: Loaded) -> int:
    """A sweep point is sweep_levels + 2 jobs (sweep_levels): the most it can be here."""
    alts = [loaded.fixed] + [alt for ax in loaded.axes for alt in ax.alternatives]
    if not any(a.get("server.profile") == "sweep" for a in alts):
        return 1
    levels = [int(a["server.sweep_levels"]) for a in alts if "server.sweep_levels" in a]
    return max(levels or [Server.model_fields["sweep_levels"].default]) + 2


def sweep_levels(point: Point) -> Iterator[Point]:
    """A server-mode sweep as its levels, in the order they must run: the synchronous rate
    (level 0) and the maximum throughput (level n + 1) first, which the levels between are
    spread over (llem.harness.server); any other point as it is."""
    s = point.server
    if point.mode != "server" or s is None or s.profile != "sweep" or \
            s.sweep_level is not None:
        yield point
        return
    for level in (0, s.sweep_levels + 1, *range(1, s.sweep_levels + 1)):
        yield point.model_copy(update={"server": s.model_copy(update={"sweep_level": level})})


def _axes_for(axes: list[Axis], backend: str) -> list[Axis]:
    return [a for a in axes if a.backend() in (None, backend)]


def groups(loaded: Loaded) -> Iterator[Group]:
    """Lazily yield the campaign's load groups (each with a lazy job iterator)."""
    c = loaded.campaign
    for backend in c.backends:
        axes = _axes_for(loaded.axes, backend)
        load_axes = [a for a in axes if a.load]
        run_axes = [a for a in axes if not a.load]
        run_size = math.prod(len(a.alternatives) for a in run_axes)
        seen_keys: set[str] = set()
        for combo in itertools.product(*(a.alternatives for a in load_axes)):
            base: Alternative = {"backend": backend, **loaded.fixed}
            for alt in combo:
                base.update(alt)
            points = _point_factory(base, run_axes, loaded)
            first = next(points(), None)
            if first is None:
                continue
            key = load_key_of(first)
            if key in seen_keys:  # two combos resolving to the same load (e.g. {} vs default)
                continue
            seen_keys.add(key)
            yield Group(key, first, run_size * c.cycles, points, c.cycles, c.order, c.seed,
                        c.name)


def _point_factory(base: Alternative, run_axes: list[Axis], loaded: Loaded) -> Any:
    include, exclude = loaded.campaign.include, loaded.campaign.exclude

    def points() -> Iterator[Point]:
        seen: set[bytes] = set()
        for combo in itertools.product(*(a.alternatives for a in run_axes)):
            values = dict(base)
            for alt in combo:
                values.update(alt)
            if include and not any(_matches(values, r) for r in include):
                continue
            if any(_matches(values, r) for r in exclude):
                continue
            for point in sweep_levels(resolve(values)):
                h = hashlib.blake2b(canonical(point.model_dump(mode="json")).encode(),
                                    digest_size=8).digest()
                if h not in seen:
                    seen.add(h)
                    yield point

    return points


def iter_jobs(loaded: Loaded) -> Iterator[Job]:
    """Every job of the campaign, group by group (for tests, dry runs and counting)."""
    for g in groups(loaded):
        yield from g.jobs()
