"""Turn a Campaign into fixed values and axes over Point paths, validating each value.

Grammar (the predecessor's, which users know): a list of scalars is an independent axis and
axes are crossed; a list of dicts is a dependent group whose entries are alternatives ({} =
no override), each dict's keys relative to the group's key (the key `variants` takes full
paths); dotted paths reach nested fields (`vllm.max_num_seqs`). A list value that is itself
a literal list is written as a list of lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from llem.backends import get_info
from llem.config.models import (
    ENGINE_SECTIONS,
    SECTIONS,
    Campaign,
    Dataset,
    Measurement,
    Point,
    Resources,
    Server,
    describe_error,
)
from llem.config.yaml_source import Loc, SourceMap
from llem.errors import ConfigError, Problems

SECTION_MODELS: dict[str, type[BaseModel]] = {"dataset": Dataset, "measurement": Measurement,
                                              "resources": Resources, "server": Server}
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
    if "" in path.split(".") and path:
        return "a key in this path is empty"
    if head in ENGINE_SECTIONS or head == "generate":
        return None if rest else f"'{head}' needs a parameter name, e.g. {head}.<param>"
    if head in SECTION_MODELS:
        fields = SECTION_MODELS[head].model_fields
        if rest.split(".", 1)[0] in fields:
            return None
        if not rest:
            return f"'{head}' must be a map of its settings: {', '.join(fields)}"
        return f"unknown {head} setting '{rest}'; known: {', '.join(fields)}"
    if head in ("model", "backend"):
        return f"set '{head}' with the top-level '{head}s:' list"
    if path in POINT_SCALARS:
        return None
    return f"unknown parameter '{path}'"


def suggest(path: str) -> str | None:
    import difflib

    if path in ENGINE_SECTIONS or path in SECTION_MODELS or path == "generate":
        return None

    known = list(POINT_SCALARS) + [f"{s}.{f}" for s, m in SECTION_MODELS.items()
                                   for f in m.model_fields]
    close = difflib.get_close_matches(path, known, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _flatten(d: dict[str, Any], prefix: str, loc: Loc) -> list[tuple[str, Any, Loc]]:
    """Nested dicts become dotted paths; lists and scalars are leaves."""
    out: list[tuple[str, Any, Loc]] = []
    for k, v in d.items():
        path, here = f"{prefix}.{k}" if prefix else k, loc + (k,)
        if isinstance(v, dict) and v and path != "variants":
            out.extend(_flatten(v, path, here))
        else:
            out.append((path, v, here))
    return out


def dotted(d: dict[str, Any]) -> dict[str, Any]:
    """Nested maps as dotted paths (`transformers.quantization.load_in_8bit`), the grid
    grammar's names: for include/exclude rules and for labelling stored points."""
    return {p: v for p, v, _ in _flatten(d, "", ())}


def flatten_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """An include/exclude rule with nested maps written as dotted paths."""
    return dotted(rule)


Where = dict[str, Loc]  # path of a fixed value -> where it was written


def collect(c: Campaign, smap: SourceMap, problems: Problems | None = None,
            check_backends: bool = True) -> tuple[Alternative, list[Axis], Where]:
    """Split a campaign into fixed values and axes, validating each value; every mistake
    goes to problems (without: the first is raised). A path written twice (dotted and nested,
    in a section and in grid:, as a value and as an axis) is a mistake naming both lines;
    variants and dependent groups may override a fixed value (that is what they are for)."""
    own = problems is None
    problems = Problems() if problems is None else problems
    fixed: Alternative = {}
    where: Where = {}
    axes: list[Axis] = []
    entries: list[tuple[str, Any, Loc]] = []
    for section in SECTIONS:
        entries += _flatten(getattr(c, section), section, (section,))
    for section in ENGINE_SECTIONS:
        entries += _flatten(c.engine_section(section), section, (section,))
    entries += _flatten(c.grid, "", ("grid",))
    models = tuple({"model": m} for m in c.models)
    axes.append(Axis("model", models, tuple(("models", i) for i in range(len(models)))))
    written: dict[str, Loc] = {}  # path of a fixed value or plain axis -> where
    for path, value, loc in entries:
        with problems.collecting():
            group = isinstance(value, list) and bool(value) and \
                all(isinstance(v, dict) for v in value)
            if path == "variants" and not group:
                bad = next((i for i, v in enumerate(value) if not isinstance(v, dict)),
                           None) if isinstance(value, list) else None
                raise smap.error(loc if bad is None else loc + (bad,),
                                 "'variants' must be a list of maps of full paths",
                                 hint="e.g. variants: [{}, {dtype: float16, batch_size: 8}]")
            if not group:
                _check(path, loc, smap)  # a dependent group's own key is a prefix, not a field
                if path in written:
                    raise _twice(smap, path, loc, written[path])
                written[path] = loc
            if isinstance(value, list):
                if not value:
                    raise smap.error(loc, "empty list: an axis needs at least one value",
                                     hint="remove the key or give it values")
                alts, locs, n = [], [], len(problems.errors)
                for i in distinct(value):  # a value listed twice is one alternative
                    with problems.collecting():
                        alts.append(_alternative(path, value[i], loc + (i,), smap))
                        locs.append(loc + (i,))
                if len(problems.errors) == n:
                    axes.append(Axis(path, tuple(alts), tuple(locs)))
            else:
                _validate({**fixed, path: value}, loc, smap)  # fixed: values found good
                fixed[path] = value
                where[path] = loc
    _check_nesting(fixed, where, axes, smap, problems)
    if check_backends:
        _check_backends(c, fixed, where, axes, smap, problems)
    if own:
        problems.check()
    return fixed, axes, where


def _twice(smap: SourceMap, path: str, loc: Loc, first: Loc) -> ConfigError:
    return smap.error(loc, f"'{path}' is also set on line {smap.line(first)}",
                      hint="keep one of them: the later one would win silently")


def same_key(value: Any) -> Any:
    """value as a key that tells values apart as a grid does: 1 and 1.0 are one number,
    true is not 1, maps compare by content."""
    if isinstance(value, bool) or value is None:
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    return ("j", json.dumps(value, sort_keys=True, default=str))


def distinct(values: list[Any]) -> list[int]:
    """Indexes of values' first copies: a value listed twice (models: [a, a], an alias that
    repeats an alternative) is one choice, so every point is one job per cycle."""
    first: dict[Any, int] = {}
    for i, v in enumerate(values):
        first.setdefault(same_key(v), i)
    return sorted(first.values())


def _check_nesting(fixed: Alternative, where: Where, axes: list[Axis], smap: SourceMap,
                   problems: Problems) -> None:
    """No path may reach inside another path's non-map value (dataset.path and
    dataset.path.x)."""
    used = [(p, v, where[p]) for p, v in fixed.items()]
    used += [(p, v, ax.locs[j]) for ax in axes for j, alt in enumerate(ax.alternatives)
             for p, v in alt.items()]
    leaves = {p for p, v, _ in used if not isinstance(v, dict)}
    for path, _, loc in used:
        parts = path.split(".")
        for n in range(1, len(parts)):
            if ".".join(parts[:n]) in leaves:
                problems.add(smap.error(loc, f"'{path}' reaches inside "
                                        f"'{'.'.join(parts[:n])}', which is set to a value",
                                        hint="keep one of them"))
                break


def _check(path: str, loc: Loc, smap: SourceMap) -> None:
    why = check_path(path)
    if why:
        raise smap.error(loc, why, hint=suggest(path))


def _alternative(path: str, value: Any, loc: Loc, smap: SourceMap) -> Alternative:
    if isinstance(value, dict):
        prefix = "" if path == "variants" else path
        alt: Alternative = {}
        written: dict[str, Loc] = {}
        for p, v, here in _flatten(value, prefix, loc):
            _check(p, loc, smap)
            if p in alt:
                raise _twice(smap, p, here, written[p])
            alt[p], written[p] = v, here
    else:
        alt = {path: value}
    _validate(alt, loc, smap)
    return alt


def _validate(alt: Alternative, loc: Loc, smap: SourceMap) -> None:
    """Check the values of alt by resolving them into a Point on their own (rules across
    fields are checked on whole combinations: llem.config.checks.check_cross_fields)."""
    try:
        resolve({"backend": "noop", "model": "x", **alt})
    except ValidationError as exc:
        errors = [e for e in exc.errors() if not _whole_section(e)]
        if not errors:  # a rule across a section's fields: checked on whole points
            return
        err = errors[0]
        field = ".".join(str(p) for p in err["loc"])
        key = ".".join(str(p) for p in loc)
        shown = "" if key.endswith(field) or f"{field}." in key else f"{field}: "
        raise smap.error(loc, shown + describe_error(err)) from None
    except ValueError as exc:  # a path inside a value (_set)
        raise smap.error(loc, str(exc)) from None


def _whole_section(err: Any) -> bool:
    """A section's own rule across its fields (e.g. a poisson profile needs a rate): a value
    written alone cannot break it, so it is checked on whole combinations
    (llem.config.checks.check_sections)."""
    return err["type"] == "value_error" and (not err["loc"] or (
        len(err["loc"]) == 1 and err["loc"][0] in SECTION_MODELS))


def _check_backends(c: Campaign, fixed: Alternative, where: Where, axes: list[Axis],
                    smap: SourceMap, problems: Problems) -> None:
    """Unknown backends, engine sections for absent backends, unsupported parameters (each
    mistake once, at the first value that makes it)."""
    defaults = Point(backend="noop", model="x")
    used = [(p, v, where[p]) for p, v in fixed.items()]
    used += [(p, v, ax.locs[j]) for ax in axes for j, alt in enumerate(ax.alternatives)
             for p, v in alt.items()]
    said: set[tuple[str, str]] = set()
    for section in ENGINE_SECTIONS:
        if c.engine_section(section) and section not in c.backends:
            problems.add(smap.error((section,), f"engine settings for '{section}', which is "
                                    "not in backends:",
                                    hint=f"add {section} to backends or remove this"))
    for path, _, loc in used:
        head = path.split(".", 1)[0]
        if head in ENGINE_SECTIONS and head not in c.backends and \
                not c.engine_section(head) and ("", path) not in said:
            said.add(("", path))
            problems.add(smap.error(loc, f"'{path}' is a setting of '{head}', which is not in "
                                    "backends:", hint=f"add {head} to backends or remove it"))
    for i, name in enumerate(c.backends):
        try:
            info = get_info(name)
        except KeyError as exc:
            problems.add(smap.error(("backends", i), str(exc.args[0])))
            continue
        for path, value, loc in used:
            if (name, path) in said:
                continue
            try:
                _supports(name, info, path, value, loc, defaults, smap)
            except ConfigError as err:
                said.add((name, path))
                problems.add(err)


def _supports(name: str, info: Any, path: str, value: Any, loc: Loc, defaults: Point,
              smap: SourceMap) -> None:
    if path == "mode" and value == "server" and info.server is None:
        raise smap.error(loc, f"backend '{name}' has no server mode",
                         hint="use mode: offline, or a backend with a server")
    if path in POINT_SCALARS and path not in ("dtype", "batch_size", "mode") and \
            path != "streaming" and value != getattr(defaults, path) and \
            path not in info.supports:
        raise smap.error(loc, f"backend '{name}' does not support '{path}'",
                         hint="remove it or use another backend")
    if path == "streaming" and value and not info.streaming:
        raise smap.error(loc, f"backend '{name}' cannot measure streaming "
                         "(per-token) latency", hint="set streaming: false or use "
                         "another backend")


def resolve(values: Alternative) -> Point:
    """Build a Point from a flat {path: value} dict (engine sections -> Point.engine)."""
    backend = values["backend"]
    nested: dict[str, Any] = {"engine": {}, "generate": {}}
    for path, value in values.items():
        head, _, rest = path.partition(".")
        if head in ENGINE_SECTIONS:
            if head != backend:
                continue
            _set(nested["engine"], rest, value, path)
        elif rest:
            _set(nested.setdefault(head, {}), rest, value, path)
        else:
            nested[head] = value
    return Point.model_validate(nested)


def _set(d: dict[str, Any], dotted: str, value: Any, path: str) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            inner = path[: path.index(dotted)] + dotted[: dotted.index(p) + len(p)]
            raise ValueError(f"'{path}' reaches inside '{inner}', which is set to a value "
                             "(keep one of them)")
    d[leaf] = value
