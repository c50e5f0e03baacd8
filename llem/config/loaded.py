"""A loaded grid file: the validated Campaign, its fixed values and axes, and where each
value was written (for errors with file and line). What the grid's expansion walks.

A file is one or more parts, each a grid of its own: the sweep (grid:, sections, engine
sections, include/exclude) and each explicit experiment (llem.config.parts). A part's
points for one backend are its fixed values and axes with that backend's per_backend
values laid over them (fixed_for, axes_for).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llem.config.axes import Alternative, Axis, Where, same_key
from llem.config.campaign import Campaign
from llem.config.yaml_source import SourceMap


@dataclass
class Scoped:
    """One backend's per_backend values and axes: they replace the part's on those paths."""

    fixed: Alternative = field(default_factory=dict)
    axes: list[Axis] = field(default_factory=list)
    where: Where = field(default_factory=dict)

    def paths(self) -> set[str]:
        return set(self.fixed) | {p for ax in self.axes for p in ax.paths()}


@dataclass
class Loaded:
    """A validated campaign: the file's model, its fixed values and axes, and its source map."""

    campaign: Campaign
    fixed: Alternative
    axes: list[Axis]
    source: SourceMap
    path: Path | None = None
    where: Where = field(default_factory=dict)  # fixed value's path -> where it was written
    per_backend: dict[str, Scoped] = field(default_factory=dict)
    experiments: list[Loaded] = field(default_factory=list)
    backends: list[str] | None = None  # the backends this part crosses (None: campaign's)
    rules: bool = True  # include/exclude shape this part (the sweep; not an experiment)
    label: str = "grid"  # what this part is called in messages
    notes: list[str] = field(default_factory=list)  # checks skipped, and why
    _axes: dict[Any, list[Axis]] = field(default_factory=dict, repr=False)

    def parts(self) -> list[Loaded]:
        """The sweep and then each experiment."""
        return [self, *self.experiments]

    def part_backends(self) -> list[str]:
        return list(self.backends if self.backends is not None else self.campaign.backends)

    @property
    def include(self) -> list[dict[str, Any]]:
        return self.campaign.include if self.rules else []

    @property
    def exclude(self) -> list[dict[str, Any]]:
        return self.campaign.exclude if self.rules else []

    def fixed_for(self, backend: str) -> Alternative:
        """The fixed values of this part's points of backend."""
        scoped = self.per_backend.get(backend)
        if scoped is None:
            return dict(self.fixed)
        out = {p: v for p, v in self.fixed.items() if p not in scoped.paths()}
        return {**out, **scoped.fixed}

    def where_for(self, backend: str) -> Where:
        scoped = self.per_backend.get(backend)
        return {**self.where, **scoped.where} if scoped else dict(self.where)

    def axes_for(self, backend: str) -> list[Axis]:
        """The axes of this part's points of backend: another backend's engine axes left
        out, per_backend's paths taken out of the shared axes and its own axes added."""
        key = (backend, tuple(map(id, self.axes)), id(self.per_backend.get(backend)))
        if key not in self._axes:
            scoped = self.per_backend.get(backend)
            mine = scoped.paths() if scoped else set()
            out = []
            for ax in self.axes:
                if ax.backend() not in (None, backend):
                    continue
                kept = _without(ax, mine) if ax.paths() & mine else ax
                if kept is not None:
                    out.append(kept)
            self._axes[key] = out + (scoped.axes if scoped else [])
        return self._axes[key]

    def used(self) -> list[tuple[str, str, Any, Any]]:
        """(backend, path, value, where written) of every value of every part."""
        out = []
        for part in self.parts():
            for b in part.part_backends():
                where = part.where_for(b)
                out += [(b, p, v, where.get(p, (p.split(".", 1)[0],)))
                        for p, v in part.fixed_for(b).items()]
                out += [(b, p, v, loc) for ax in part.axes_for(b)
                        for alt, loc in zip(ax.alternatives, ax.locs) for p, v in alt.items()]
        return out


def _without(ax: Axis, paths: set[str]) -> Axis | None:
    """ax with paths taken out of its alternatives (None when nothing else is left)."""
    alts, locs, seen = [], [], set()
    for alt, loc in zip(ax.alternatives, ax.locs):
        rest = {p: v for p, v in alt.items() if p not in paths}
        key = repr(sorted((p, same_key(v)) for p, v in rest.items()))
        if key not in seen:
            seen.add(key)
            alts.append(rest)
            locs.append(loc)
    if not any(alts):
        return None
    return Axis(ax.key, tuple(alts), tuple(locs))
