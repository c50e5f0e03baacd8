"""Command-line values laid over a grid file (or building a one-point campaign without one).

A flag such as --batch-size names one parameter path; it replaces that path wherever the file
set it (its section, or grid: in nested or dotted form), so the flag always wins and the
file's axis on that path, if any, collapses to the flag's single value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llem.config.models import SECTIONS
from llem.config.yaml_source import Loc, shown

TOP_LEVEL = ("name", "store", "cycles", "order", "interleave", "seed", "models", "backends")


@dataclass(frozen=True)
class Flag:
    """An override's value and what set it (`--batch-size 4`): a message about the value
    names that, not the grid file's line of the section it landed in."""

    value: Any
    label: str


def labels(overrides: dict[str, Any]) -> dict[Loc, str]:
    """Where each override lands in the merged data (the locations merge_overrides writes)
    and what set it: a Flag's label, else `override PATH=VALUE` (llem.api's overrides)."""
    out: dict[Loc, str] = {}
    for path, value in overrides.items():
        if value is None or (isinstance(value, Flag) and value.value is None):
            continue
        if path.startswith("grid."):
            loc: Loc = ("grid", path[len("grid."):])
        else:
            loc = (path,) if path in TOP_LEVEL else ("grid", path)
        out[loc] = value.label if isinstance(value, Flag) else f"override {path}={shown(value)}"
    return out


def one_point(model: str, backend: str, name: str = "quick") -> dict[str, Any]:
    """The data of a campaign with one model and one backend and no axes (a quick run)."""
    return {"name": name, "models": [model], "backends": [backend]}


def merge_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """data with each override applied; keys are top-level keys or dotted parameter paths
    ('grid.<path>' names a parameter whose name is also a top-level key, e.g. grid.seed)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for path, value in overrides.items():
        if isinstance(value, Flag):
            value = value.value
        if value is None:
            continue
        if path.startswith("grid."):  # explicitly a parameter (seed is also a top-level key)
            path = path[len("grid."):]
        elif path in TOP_LEVEL:
            out[path] = value
            continue
        _remove(out, path)
        grid = out.get("grid")
        if not isinstance(grid, dict):
            grid = {}
        out["grid"] = {**grid, path: value}
    return out


def _remove(data: dict[str, Any], path: str) -> None:
    """Drop path from its section, from grid:, from each per_backend entry and each
    experiment (as a dotted key or nested maps): the flag's value is every point's."""
    head, _, rest = path.partition(".")
    if rest and head in SECTIONS and isinstance(data.get(head), dict):
        data[head] = _without(data[head], rest)
    if isinstance(data.get("grid"), dict):
        data["grid"] = _without(data["grid"], path)
    if isinstance(data.get("per_backend"), dict):
        data["per_backend"] = {b: _without(v, path) if isinstance(v, dict) else v
                               for b, v in data["per_backend"].items()}
        data["per_backend"] = {b: v for b, v in data["per_backend"].items() if v != {}}
    if isinstance(data.get("experiments"), list):
        kept = [_without(e, path) if isinstance(e, dict) else e for e in data["experiments"]]
        data["experiments"] = [e for e in kept if e != {}]  # only the flag's path: gone


def _without(d: dict[str, Any], dotted: str) -> dict[str, Any]:
    """A copy of d without dotted (written either as 'a.b' or as a: {b: ...})."""
    out = {k: v for k, v in d.items() if k != dotted}
    head, _, rest = dotted.partition(".")
    if rest and isinstance(out.get(head), dict):
        inner = _without(out[head], rest)
        if inner:
            out[head] = inner
        else:
            del out[head]
    return out
