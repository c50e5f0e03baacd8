"""Lazy expansion of a campaign into load groups and jobs.

Axes that change what a worker loads (model, dtype, engine args, resources) are crossed
outside; the others inside. So a group (one model load) is known before any of its jobs is
built, and a grid of a million points is never held in memory. With cycles interleaved
across groups (llem.config.order) each group is queued once per cycle (llem.config.group).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydantic import ValidationError

from llem.config.axes import Alternative, Axis, Where, resolve, same_key
from llem.config.campaign import describe_error
from llem.config.group import Group, per_cycle, planned
from llem.config.job import Job, canonical, load_key_of
from llem.config.loaded import Loaded
from llem.config.models import Point, Server
from llem.config.order import across_groups
from llem.config.rules import Rules
from llem.config.yaml_source import Loc, SourceMap
from llem.errors import ConfigError


def _matches(values: Alternative, rule: dict[str, Any]) -> bool:
    """Does a point's values match an include/exclude rule? Values compare as a grid tells
    them apart (llem.config.axes.same_key): true is not 1, 1 is 1.0."""
    for path, want in rule.items():
        have = values.get(path)
        if isinstance(want, list) and not isinstance(have, list):
            if not any(_same(have, w) for w in want):
                return False
        elif not _same(have, want):
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    """a and b are one value to a grid: == (1 is 1.0) but a boolean is not a number; the
    cheap test first (a rule is matched against every point)."""
    if a != b:
        return False
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return not isinstance(a, list | dict) or same_key(a) == same_key(b)


Choice = tuple[int, Alternative, Loc]  # an axis (its index), the values asked about, where


def combinations(loaded: Loaded, wanted: Callable[[str], bool],
                 backends: list[str] | None = None) -> Iterator[tuple[Alternative, Where]]:
    """Each distinct combination of values at the paths `wanted` selects that the grid's
    points have (include/exclude applied; every part: the sweep and each experiment), with
    where each value was written.

    Only the axes that set such a path are crossed; whether the rules keep some point with a
    combination is asked of the axes the rules name, once per distinct choice of their
    values. Exact, and cheap where the grid is large but the question is about few of its
    axes: nothing is resolved, and no point is enumerated."""
    seen: set[str] = set()
    for part in loaded.parts():
        named = {p for rule in (*part.include, *part.exclude) for p in rule}
        for backend in part.part_backends():
            if backends is not None and backend not in backends:
                continue
            fixed: Alternative = {"backend": backend, **part.fixed_for(backend)}
            part_where = part.where_for(backend)
            base = {p: v for p, v in fixed.items() if wanted(p)}
            base_where = {p: part_where[p] for p in base if p in part_where}
            outer: list[list[Choice]] = []
            inner: list[list[Choice]] = []
            for i, ax in enumerate(part.axes_for(backend)):
                paths = ax.paths()
                if any(wanted(p) for p in paths):
                    outer.append(_choices(ax, i, _either(wanted, named)))
                elif paths & named:
                    inner.append(_choices(ax, i, named.__contains__))
            rule_base = {p: v for p, v in fixed.items() if p in named}
            kept: dict[str, bool] = {}
            for combo in itertools.product(*outer):
                values, where = dict(base), dict(base_where)
                for _, sub, loc in combo:
                    asked = {p: v for p, v in sub.items() if wanted(p)}
                    values.update(asked)
                    where.update(dict.fromkeys(asked, loc))
                key = repr(sorted(values.items()))
                if key in seen:
                    continue
                if named:
                    ruled = [(i, {p: v for p, v in sub.items() if p in named})
                             for i, sub, _ in combo]
                    rkey = repr(ruled)
                    if rkey not in kept:
                        kept[rkey] = _kept(part, rule_base, ruled, inner)
                    if not kept[rkey]:
                        continue
                seen.add(key)
                yield values, {p: where[p] for p in values if p in where}


def never_used(loaded: Loaded, wanted: Callable[[str], bool],
               judge: Callable[[Alternative, Where], Iterable[tuple[Loc, str, bool]]],
               ) -> tuple[Loc, str] | None:
    """The first place a value was written that no point it reaches uses, with the field it
    sets (None: each is used by some point). judge(values, where) yields, for each value of
    interest in one combination, (where it was written, its field, whether these points use
    it). The checks of settings a point leaves unused (llem.config.checks,
    llem.config.greedy_check) share it."""
    used: dict[Loc, bool] = {}
    field_of: dict[Loc, str] = {}
    for values, where in combinations(loaded, wanted):
        for loc, field, ok in judge(values, where):
            used[loc] = used.get(loc, False) or ok
            field_of[loc] = field
    return next(((loc, field_of[loc]) for loc, ok in used.items() if not ok), None)


def _either(wanted: Callable[[str], bool], named: set[str]) -> Callable[[str], bool]:
    return lambda p: wanted(p) or p in named


def _choices(ax: Axis, index: int, keep: Callable[[str], bool]) -> list[Choice]:
    distinct: dict[str, Choice] = {}
    for alt, loc in zip(ax.alternatives, ax.locs):
        sub = {p: v for p, v in alt.items() if keep(p)}
        distinct.setdefault(repr(sorted(sub.items())), (index, sub, loc))
    return list(distinct.values())


def _kept(loaded: Loaded, base: Alternative, outer: list[tuple[int, Alternative]],
          inner: list[list[Choice]]) -> bool:
    """Does some choice of the inner axes make a point that include/exclude keep? A search
    over the inner axes, one at a time, that stops a branch as soon as the values no later
    axis can change already decide it (values are laid in axis order, as in the grid)."""
    include, exclude = loaded.include, loaded.exclude
    later: list[set[str]] = [set() for _ in range(len(inner) + 1)]
    for k in range(len(inner) - 1, -1, -1):
        later[k] = later[k + 1] | {p for _, sub, _ in inner[k] for p in sub}

    def verdict(rule: dict[str, Any], values: Alternative, open_: set[str]) -> bool | None:
        """Does rule match (None: not known while the paths in open_ may change)?"""
        known = True
        for path, want in rule.items():
            if path in open_:
                known = False
            elif not _matches(values, {path: want}):
                return False
        return True if known else None

    stack: list[list[tuple[int, Alternative]]] = [[]]  # the inner choices made so far
    while stack:
        chosen = stack.pop()
        k = len(chosen)
        values = dict(base)
        for _, sub in sorted([*outer, *chosen], key=lambda t: t[0]):
            values.update(sub)
        if include and all(verdict(r, values, later[k]) is False for r in include):
            continue
        if any(verdict(r, values, later[k]) is True for r in exclude):
            continue
        if k == len(inner):
            return True
        stack.extend([*chosen, (i, sub)] for i, sub, _ in reversed(inner[k]))
    return False


def located(smap: SourceMap, exc: ValidationError | ValueError, where: Where) -> ConfigError:
    """A rule across fields broken by a combination of values: a ConfigError at the line of
    a value it names (else of the last value written)."""
    if not isinstance(exc, ValidationError):
        return smap.error(next(iter(where.values()), ("grid",)), str(exc))
    err = exc.errors()[0]
    msg = describe_error(err)
    section = str(err["loc"][0]) if err["loc"] else ""
    named = [p for p in where if p.split(".")[-1] in msg or
             (section and (p == section or p.startswith(section + ".")))]
    loc = where[named[-1]] if named else next(reversed(where.values()), ("grid",))
    field = ".".join(str(p) for p in err["loc"])
    shown = f"{field}: " if field and field not in ".".join(str(p) for p in loc) else ""
    return smap.error(loc, shown + msg)


def count_points(loaded: Loaded) -> int:
    """Distinct points of every part, include/exclude applied (exact unless two points
    resolve to one configuration, or rules name so many axes that the count would walk
    more than COUNT_WALK of their choices: then before the rules)."""
    total = 0
    for part in loaded.parts():
        for b in part.part_backends():
            total += _count(part, b)
    return total * _sweep_factor(loaded)


COUNT_WALK = 1_000_000


def _count(part: Loaded, backend: str) -> int:
    axes = part.axes_for(backend)
    named = {p for rule in (*part.include, *part.exclude) for p in rule}
    if not named:
        return math.prod(len(a.alternatives) for a in axes)
    base = {"backend": backend, **part.fixed_for(backend)}
    ruled: list[list[tuple[Alternative, int]]] = []
    free = 1
    for ax in axes:
        if not ax.paths() & named:
            free *= len(ax.alternatives)
            continue
        counts: dict[str, tuple[Alternative, int]] = {}
        for alt in ax.alternatives:
            sub = {p: v for p, v in alt.items() if p in named}
            key = repr(sorted(sub.items()))
            counts[key] = (sub, counts[key][1] + 1 if key in counts else 1)
        ruled.append(list(counts.values()))
    if math.prod(len(r) for r in ruled) > COUNT_WALK:
        return free * math.prod(sum(n for _, n in r) for r in ruled)
    kept = 0
    include, exclude = Rules(part.include, _matches), Rules(part.exclude, _matches)
    for combo in itertools.product(*ruled):
        values = dict(base)
        for sub, _ in combo:
            values.update(sub)
        if include and not include.any(values):
            continue
        if exclude.any(values):
            continue
        kept += math.prod(n for _, n in combo)
    return kept * free


def count_before_rules(loaded: Loaded) -> int:
    """Points of every part with include/exclude not applied."""
    return sum(math.prod(len(a.alternatives) for a in part.axes_for(b))
               for part in loaded.parts() for b in part.part_backends()) * \
        _sweep_factor(loaded)


def _sweep_factor(loaded: Loaded) -> int:
    """A sweep point is sweep_levels + 2 jobs (sweep_levels): the most it can be here."""
    alts: list[Alternative] = []
    for part in loaded.parts():
        for b in part.part_backends():
            alts += [part.fixed_for(b)] + [alt for ax in part.axes_for(b)
                                           for alt in ax.alternatives]
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


def groups(loaded: Loaded) -> Iterator[Group]:
    """The campaign's groups as the driver queues them (planned orders them): the load
    groups (load_groups), or with cycles interleaved across two or more of them
    (llem.config.order.across_groups) each group once per cycle, cycle 0 first."""
    c = loaded.campaign
    if not across_groups(c):
        yield from load_groups(loaded)
        return
    loads = list(load_groups(loaded))  # every load's first point is resolved already
    if len(loads) < 2:  # one load group: nothing to interleave with, one load
        yield from loads
        return
    yield from per_cycle(loads, c.cycles, c.order, c.seed)


def load_groups(loaded: Loaded) -> Iterator[Group]:
    """Lazily yield the campaign's load groups (each with a lazy job iterator over every
    cycle). The sweep's groups come as they are found; an experiment's points join the
    sweep's group of the same load key (one model load), and its other groups follow."""
    c = loaded.campaign
    extra: dict[str, tuple[Point, int, list[Any]]] = {}
    for part in loaded.experiments:
        for key, first, size, factory in _part_groups(part):
            have = extra.get(key)
            extra[key] = (have[0], have[1] + size, [*have[2], factory]) if have else \
                (first, size, [factory])
    for key, first, size, factory in _part_groups(loaded):
        more = extra.pop(key, None)
        factories = [factory, *(more[2] if more else [])]
        yield Group(key, first, (size + (more[1] if more else 0)) * c.cycles,
                    _merged(factories), c.cycles, c.order, c.seed, c.name)
    for key, (first, size, factories) in extra.items():
        yield Group(key, first, size * c.cycles, _merged(factories), c.cycles, c.order,
                    c.seed, c.name)


def _part_groups(part: Loaded) -> Iterator[tuple[str, Point, int, Any]]:
    """(load key, first point, size hint, point factory) of each load of a part: load
    combinations resolving to the same load (an alternative that also sets run settings,
    {} vs a default) are one group, their points merged. Every load combination's first
    point is resolved before the first group is yielded; its jobs stay lazy. The size hint
    is an upper bound (timeline_index numbers each group's jobs from the sum of those
    before it)."""
    found: dict[str, tuple[Point, int, list[Any]]] = {}
    levels = _sweep_factor(part)  # a server sweep's point is this many jobs at most
    for backend in part.part_backends():
        axes = part.axes_for(backend)
        load_axes = [a for a in axes if a.load]
        run_axes = [a for a in axes if not a.load]
        run_size = math.prod(len(a.alternatives) for a in run_axes) * levels
        fixed, fixed_where = part.fixed_for(backend), part.where_for(backend)
        for combo in itertools.product(*(zip(a.alternatives, a.locs) for a in load_axes)):
            base: Alternative = {"backend": backend, **fixed}
            where = dict(fixed_where)
            for alt, loc in combo:
                base.update(alt)
                where.update(dict.fromkeys(alt, loc))
            points = _point_factory(base, where, run_axes, part)
            first = next(points(), None)
            if first is None:
                continue
            key = load_key_of(first)
            have = found.get(key)
            found[key] = (have[0], have[1] + run_size, [*have[2], points]) if have else \
                (first, run_size, [points])
    for key, (first, size, factories) in found.items():
        yield key, first, size, _merged(factories)


def _merged(factories: list[Any]) -> Any:
    """One group's points out of several factories, each distinct point once."""
    if len(factories) == 1:
        return factories[0]

    def points() -> Iterator[Point]:
        seen: set[bytes] = set()
        for factory in factories:
            yield from _unseen(factory(), seen)

    return points


def _unseen(points: Iterable[Point], seen: set[bytes]) -> Iterator[Point]:
    """The points whose canonical form is not in seen yet (a short hash), adding each."""
    for point in points:
        h = hashlib.blake2b(canonical(point.model_dump(mode="json")).encode(),
                            digest_size=8).digest()
        if h not in seen:
            seen.add(h)
            yield point


def _point_factory(base: Alternative, base_where: Where, run_axes: list[Axis],
                   loaded: Loaded) -> Any:
    include, exclude = Rules(loaded.include, _matches), Rules(loaded.exclude, _matches)

    def points() -> Iterator[Point]:
        seen: set[bytes] = set()
        for combo in itertools.product(*(zip(a.alternatives, a.locs) for a in run_axes)):
            values = dict(base)
            for alt, _ in combo:
                values.update(alt)
            if include and not include.any(values):
                continue
            if exclude.any(values):
                continue
            try:
                resolved = resolve(values)
            except (ValidationError, ValueError) as exc:  # the load checks should catch it
                where = dict(base_where)
                for alt, loc in combo:
                    where.update(dict.fromkeys(alt, loc))
                raise located(loaded.source, exc, where) from None
            yield from _unseen(sweep_levels(resolved), seen)

    return points


def iter_jobs(loaded: Loaded) -> Iterator[Job]:
    """Every job of the campaign in its planned order (planned: groups largest first by
    their size hint; the driver counts exactly where include/exclude make it loose), group
    by group (for tests, dry runs and counting)."""
    for g in planned(groups(loaded), lambda g: g.size_hint):
        yield from g.jobs()
