"""Turn a Campaign into fixed values and axes over Point paths, validating each value.

Grammar (the predecessor's, which users know): a list of scalars is an independent axis and
axes are crossed; a list of dicts is a dependent group whose entries are alternatives ({} =
no override), each dict's keys relative to the group's key (the key `variants` takes full
paths); dotted paths reach nested fields (`vllm.max_num_seqs`). A list value that is itself
a literal list is written as a list of lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from llem.config.models import (
    ENGINE_SECTIONS,
    SECTIONS,
    Campaign,
    Dataset,
    Measurement,
    Point,
    Resources,
)
from llem.config.yaml_source import Loc, SourceMap

SECTION_MODELS = {"dataset": Dataset, "measurement": Measurement, "resources": Resources}
POINT_SCALARS = tuple(f for f in Point.model_fields if f not in SECTIONS
                      and f not in ("engine", "generate", "backend", "model"))
LOAD_PREFIXES = ("model", "dtype", "resources.", "engine.") + tuple(f"{b}." for b in
                                                                     ENGINE_SECTIONS)

Alternative = dict[str, Any]  # path -> value


@dataclass(frozen=True)
class Axis:
    """One dimension of the grid: its alternatives and where each was written."""

    key: str
    alternatives: tuple[Alternative, ...]
    locs: tuple[Loc, ...]

    @property
    def load(self) -> bool:
        """Does choosing among these alternatives change what the worker loads?"""
        return any(is_load_path(p) for alt in self.alternatives for p in alt)

    def backend(self) -> str | None:
        """The engine section this axis belongs to, if it is backend-specific."""
        head = self.key.split(".", 1)[0]
        return head if head in ENGINE_SECTIONS else None


def is_load_path(path: str) -> bool:
    return path in ("model", "dtype") or path.startswith(LOAD_PREFIXES)


def check_path(path: str) -> str | None:
    """Why path names no Point field (None when it does)."""
    head, _, rest = path.partition(".")
    if head in ENGINE_SECTIONS or head == "generate":
        return None if rest else f"'{head}' needs a parameter name, e.g. {head}.<param>"
    if head in SECTION_MODELS:
        fields = SECTION_MODELS[head].model_fields
        if rest.split(".", 1)[0] in fields:
            return None
        return f"unknown {head} setting '{rest}'; known: {', '.join(fields)}"
    if head in ("model", "backend"):
        return f"set '{head}' with the top-level '{head}s:' list"
    if path in POINT_SCALARS:
        return None
    return f"unknown parameter '{path}'"


def suggest(path: str) -> str | None:
    import difflib

    known = list(POINT_SCALARS) + [f"{s}.{f}" for s, m in SECTION_MODELS.items()
                                   for f in m.model_fields]
    close = difflib.get_close_matches(path, known, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _flatten(d: dict[str, Any], prefix: str, loc: Loc) -> list[tuple[str, Any, Loc]]:
    """Nested dicts become dotted paths; lists and scalars are leaves."""
    out: list[tuple[str, Any, Loc]] = []
    for k, v in d.items():
        path, here = f"{prefix}.{k}" if prefix else k, loc + (k,)
        if isinstance(v, dict) and v:
            out.extend(_flatten(v, path, here))
        else:
            out.append((path, v, here))
    return out


def collect(c: Campaign, smap: SourceMap) -> tuple[Alternative, list[Axis]]:
    """Split a campaign into fixed values and axes; raise ConfigError at the first bad one."""
    fixed: Alternative = {}
    axes: list[Axis] = []
    entries: list[tuple[str, Any, Loc]] = []
    for section in SECTIONS:
        entries += [(f"{section}.{k}", v, (section, k)) for k, v in getattr(c, section).items()]
    for section in ENGINE_SECTIONS:
        entries += _flatten(getattr(c, section), section, (section,))
    entries += [(k, v, ("grid", k)) for k, v in c.grid.items()]
    models = tuple({"model": m} for m in c.models)
    axes.append(Axis("model", models, tuple(("models", i) for i in range(len(models)))))

    for path, value, loc in entries:
        if path != "variants":
            why = check_path(path)
            if why:
                raise smap.error(loc, why, hint=suggest(path))
        if isinstance(value, list):
            if not value:
                raise smap.error(loc, "empty list: an axis needs at least one value",
                                 hint="remove the key or give it values")
            alts = tuple(_alternative(path, v, loc + (i,), smap) for i, v in enumerate(value))
            axes.append(Axis(path, alts, tuple(loc + (i,) for i in range(len(value)))))
        elif path == "variants":
            raise smap.error(loc, "'variants' must be a list of maps of full paths")
        else:
            fixed[path] = value
            _validate(fixed, {path: value}, loc, smap)
    _check_backends(c, fixed, axes, smap)
    return fixed, axes


def _alternative(path: str, value: Any, loc: Loc, smap: SourceMap) -> Alternative:
    if isinstance(value, dict):
        alt = {(k if path == "variants" else f"{path}.{k}"): v for k, v in value.items()}
        for p in alt:
            why = check_path(p)
            if why:
                raise smap.error(loc, why, hint=suggest(p))
    else:
        alt = {path: value}
    _validate({}, alt, loc, smap)
    return alt


def _validate(base: Alternative, alt: Alternative, loc: Loc, smap: SourceMap) -> None:
    """Check the values of alt by resolving them into a Point on their own."""
    try:
        resolve({"backend": "noop", "model": "x", **base, **alt})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise smap.error(loc, f"{field}: {err['msg']} (got {err.get('input')!r})") from None


def _check_backends(c: Campaign, fixed: Alternative, axes: list[Axis], smap: SourceMap) -> None:
    """Unknown backends, engine sections for absent backends, unsupported parameters."""
    from llem.backends import get_info

    defaults = Point(backend="noop", model="x")
    for i, name in enumerate(c.backends):
        try:
            info = get_info(name)
        except KeyError as exc:
            raise smap.error(("backends", i), str(exc.args[0])) from None
        used = [(p, v, ()) for p, v in fixed.items()]
        used += [(p, v, ax.locs[j]) for ax in axes for j, alt in enumerate(ax.alternatives)
                 for p, v in alt.items()]
        for path, value, loc in used:
            if path in POINT_SCALARS and path not in ("dtype", "batch_size") and \
                    path != "streaming" and value != getattr(defaults, path) and \
                    path not in info.supports:
                raise smap.error(loc or ("grid", path), f"backend '{name}' does not support "
                                 f"'{path}'", hint="remove it or use another backend")
            if path == "streaming" and value and not info.streaming:
                raise smap.error(loc or ("grid", path), f"backend '{name}' cannot measure "
                                 "streaming (per-token) latency")
    for section in ENGINE_SECTIONS:
        if getattr(c, section) and section not in c.backends:
            raise smap.error((section,), f"engine settings for '{section}', which is not in "
                             "backends:", hint=f"add {section} to backends or remove this")


def resolve(values: Alternative) -> Point:
    """Build a Point from a flat {path: value} dict (engine sections -> Point.engine)."""
    backend = values["backend"]
    nested: dict[str, Any] = {"engine": {}, "generate": {}}
    for path, value in values.items():
        head, _, rest = path.partition(".")
        if head in ENGINE_SECTIONS:
            if head != backend:
                continue
            _set(nested["engine"], rest, value)
        elif rest:
            _set(nested.setdefault(head, {}), rest, value)
        else:
            nested[head] = value
    return Point.model_validate(nested)


def _set(d: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    d[leaf] = value
