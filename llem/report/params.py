"""What varies between a campaign's configurations, read from the stored points.

Every runs row keeps its whole resolved point (`point_json`: top-level fields, engine and
generate arguments, dataset, measurement, resources, server). A campaign's parameters are
the dotted paths of those points (`batch_size`, `measurement.request_rate`, `server.rate`,
`engine.enforce_eager`) whose value differs between its configurations, whatever section
the grid swept them in. A path that only some points have (an engine argument of one
backend) is not a parameter of its own when its value is the same wherever it is set: the
parameter that decides it (the backend) tells the configurations apart; it is added only if
the configurations could not be told apart without it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from llem.config.axes import dotted
from llem.report.fmt import sort_key, value

# Paths shown first, in this order; the rest alphabetically, a rate level's path last.
LEADING = ("backend", "model", "mode", "dtype", "batch_size", "max_new_tokens", "streaming")
# A rate level of server mode (or an offline arrival rate): configurations that differ only
# here are one configuration measured at several loads.
LEVEL_PATHS = ("measurement.request_rate", "server.rate", "server.concurrency",
               "server.sweep_level")
# Sections whose fields are named like runs columns: shown without the section's name.
SHORT_SECTIONS = ("measurement.", "resources.")


def _key(v: Any) -> str:
    """A hashable, exact form of a value (lists and maps included)."""
    return json.dumps(v, sort_keys=True, separators=(",", ":"), default=str)


def flatten(point: dict[str, Any]) -> dict[str, Any]:
    """A point as dotted paths, empty maps dropped (`engine: {}` says nothing)."""
    return {k: v for k, v in dotted(point).items() if not (isinstance(v, dict) and not v)}


@dataclass(frozen=True)
class Param:
    """One varying path of the points."""

    path: str  # dotted path in point_json
    name: str  # what tables, labels and axes call it
    numeric: bool  # every value set is a number (a numeric axis)
    level: bool  # a rate level (LEVEL_PATHS)
    together: tuple[str, ...] = ()  # names of parameters that change with it, value for value


@dataclass
class Points:
    """The configurations (job_id -> flattened point) of a campaign and what varies."""

    flat: dict[str, dict[str, Any]]
    params: list[Param] = field(default_factory=list)

    @classmethod
    def of(cls, points: Iterable[tuple[str, str]]) -> Points:
        """From (job_id, point_json) pairs; a job without a readable point is known by its
        job_id alone (a path the others lack: it tells that job apart)."""
        flat: dict[str, dict[str, Any]] = {}
        for job_id, text in points:
            try:
                point = json.loads(text) if text else None
            except ValueError:
                point = None
            flat[job_id] = flatten(point) if isinstance(point, dict) else {"job_id": job_id}
        out = cls(flat)
        out.params = out._varying()
        return out

    @property
    def paths(self) -> list[str]:
        return sorted({p for f in self.flat.values() for p in f})

    def _values(self, path: str) -> dict[str, Any]:
        return {j: f[path] for j, f in self.flat.items() if path in f}

    def _partition(self, path: str) -> frozenset[frozenset[str]]:
        groups: dict[str, set[str]] = {}
        for j, f in self.flat.items():
            groups.setdefault(_key(f[path]) if path in f else "\0absent", set()).add(j)
        return frozenset(frozenset(g) for g in groups.values())

    def _varying(self) -> list[Param]:
        everywhere, partly = [], []
        for path in self.paths:
            vals = self._values(path)
            distinct = {_key(v) for v in vals.values()}
            if len(distinct) > 1:
                everywhere.append(path)
            elif len(vals) < len(self.flat):
                partly.append(path)
        chosen = list(everywhere)
        # configurations that differ only in a path some of them lack: that path tells them apart
        for path in partly:
            if len(self._labels(chosen)) == len(self.flat):
                break
            before = len(self._labels(chosen))
            if len(self._labels([*chosen, path])) > before:
                chosen.append(path)
        return self._params(self._order(chosen))

    def _labels(self, paths: list[str]) -> set[str]:
        return {_key([self.flat[j].get(p, "\0absent") for p in paths]) for j in self.flat}

    @staticmethod
    def _order(paths: list[str]) -> list[str]:
        def rank(p: str) -> tuple[int, int, str]:
            if p in LEADING:
                return (0, LEADING.index(p), p)
            return (2 if p in LEVEL_PATHS else 1, 0, p)
        return sorted(paths, key=rank)

    def _params(self, paths: list[str]) -> list[Param]:
        names = {}
        for p in paths:
            short = next((p[len(s):] for s in SHORT_SECTIONS if p.startswith(s)), p)
            clash = short != p and (short in paths or sum(
                q.endswith("." + short) or q == short for q in paths) > 1)
            names[p] = p if clash else short
        parts = {p: self._partition(p) for p in paths}
        out = []
        for p in paths:
            vals = [v for v in self._values(p).values() if v is not None]
            numeric = bool(vals) and all(isinstance(v, int | float) and not isinstance(v, bool)
                                         for v in vals)
            together = tuple(names[q] for q in paths if q != p and parts[q] == parts[p])
            out.append(Param(p, names[p], numeric, p in LEVEL_PATHS, together))
        return out

    def find(self, name: str) -> str | None:
        """The path a --by name means: a parameter's name or any path of the points."""
        for prm in self.params:
            if name in (prm.name, prm.path):
                return prm.path
        if name in self.paths:
            return name
        short = [p for p in self.paths if any(p == s + name for s in SHORT_SECTIONS)]
        return short[0] if len(short) == 1 else None

    def name_of(self, path: str) -> str:
        return next((prm.name for prm in self.params if prm.path == path), path)

    def value(self, job_id: str, path: str) -> Any:
        return self.flat.get(job_id, {}).get(path)

    def label(self, job_id: str, params: Iterable[Param] | None = None) -> str:
        """`batch_size=8, request_rate=16`: the varying values of one configuration (a path it
        does not have is left out, never written as null)."""
        f = self.flat.get(job_id, {})
        parts = [f"{prm.name}={value(f[prm.path])}" for prm in
                 (self.params if params is None else params) if prm.path in f]
        return ", ".join(parts)

    def values_of(self, path: str) -> list[Any]:
        """The distinct values of a path, in order."""
        seen: dict[str, Any] = {}
        for v in self._values(path).values():
            seen.setdefault(_key(v), v)
        return sorted(seen.values(), key=sort_key)

    def fixed(self) -> dict[str, str]:
        """Paths whose value every configuration shares, as `value`; a path only some have
        (with one value) says so."""
        n = len(self.flat)
        varying = {prm.path for prm in self.params}
        out = {}
        for path in self.paths:
            if path in varying:
                continue
            vals = self._values(path)
            distinct = {_key(v) for v in vals.values()}
            if len(distinct) != 1:
                continue
            text = value(next(iter(vals.values())))
            out[path] = text if len(vals) == n else f"{text} ({len(vals)} of {n} configurations)"
        return out
