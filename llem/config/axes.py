"""Values and axes over Point paths: the grid grammar of one map (the file's grid: and
sections, one per_backend entry, one experiment), each value validated.

Grammar: a scalar is a fixed value; a list of values is an axis, and axes are crossed; a
literal list value is written as a list of lists. Dotted paths reach nested fields
(`vllm.max_num_seqs`). A list of maps is a group of alternatives, never combined with
each other ({} = no override):
  - under a parameter (`measurement: [{}, {sample_hz: 50}]`) its keys are relative to that
    parameter, except a dotted key that starts with a parameter's name
    (`vllm.max_num_seqs`, `generate.min_p`): that is the full path it reads as;
  - under any other name (`quant: [...]`, `variants: [...]`: a named group) its keys are
    full paths; a grid may hold several named groups, crossed like any axes;
  - a list inside an alternative is an axis crossed within that alternative only (a
    mini-grid: `{dtype: float16, batch_size: [1, 8]}` is two alternatives).
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from llem.config.campaign import describe_error
from llem.config.models import (
    ENGINE_SECTIONS,
    MAX_POINTS,
    SECTIONS,
    Dataset,
    Measurement,
    Point,
    Resources,
    Server,
)
from llem.config.names import old_name_hint, old_value_hint
from llem.config.yaml_source import Loc, SourceMap
from llem.errors import ConfigError, Problems

SECTION_MODELS: dict[str, type[BaseModel]] = {"dataset": Dataset, "measurement": Measurement,
                                              "resources": Resources, "server": Server}
POINT_SCALARS = tuple(f for f in Point.model_fields if f not in SECTIONS
                      and f not in ("engine", "generate", "backend", "model"))
LOAD_PREFIXES = ("model", "dtype", "resources.", "engine.") + tuple(f"{b}." for b in
                                                                     ENGINE_SECTIONS)
HEADS = (*ENGINE_SECTIONS, *SECTIONS, "generate")  # names a full dotted path starts with
# llem's own fields whose value is one map, validated whole: split into paths, each key was
# checked without the other and no cloud region could be set (resources.custom is not one:
# each of its keys is a Ray resource of its own, set and overridden alone)
# from_pretrained's map-valued arguments too: their keys are module names with dots (or GPU
# numbers), not grid paths ({"": "cuda"} is the whole model)
MAP_FIELDS = frozenset({"measurement.cloud", "transformers.device_map",
                        "transformers.max_memory", "transformers.key_mapping"})

Alternative = dict[str, Any]  # path -> value
Where = dict[str, Loc]  # path of a fixed value -> where it was written


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

    def paths(self) -> set[str]:
        return {p for alt in self.alternatives for p in alt}

    def backend(self) -> str | None:
        """The engine section this axis belongs to, when all it sets is one backend's."""
        heads = {p.split(".", 1)[0] for p in self.paths()} or {self.key.split(".", 1)[0]}
        head = heads.pop() if len(heads) == 1 else None
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
    if path == "server.sweep_level":  # a level the grid set ran alone, without its anchors
        return ("server.sweep_level is set by llem as it expands a sweep into its levels "
                "(remove it; server.sweep_levels says how many)")
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
    """What the writer probably meant: llem's name for a migrating user's old one, else the
    closest parameter."""
    old = old_name_hint(path)
    if old:
        return old
    if path in ENGINE_SECTIONS or path in SECTION_MODELS or path == "generate":
        return None
    known = list(POINT_SCALARS) + [f"{s}.{f}" for s, m in SECTION_MODELS.items()
                                   for f in m.model_fields if f"{s}.{f}" != path]
    close = difflib.get_close_matches(path, known, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _flatten(d: dict[str, Any], prefix: str, loc: Loc) -> list[tuple[str, Any, Loc]]:
    """Nested dicts become dotted paths; lists, scalars and map-valued fields are leaves."""
    out: list[tuple[str, Any, Loc]] = []
    for k, v in d.items():
        path, here = f"{prefix}.{k}" if prefix else k, loc + (k,)
        if isinstance(v, dict) and v and path != "variants" and path not in MAP_FIELDS:
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


def is_group(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def named_group(path: str, value: Any) -> bool:
    """Is path the name of a group of alternatives written with full paths (not a
    parameter: `variants`, `quant`)?"""
    return "." not in path and path.split(".", 1)[0] not in HEADS and \
        path not in POINT_SCALARS and path not in ("model", "backend") and \
        (value == [] or is_group(value))


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


def distinct(values: list[Any], path: str = "") -> list[int]:
    """Indexes of values' first copies: a value listed twice (models: [a, a], an alias that
    repeats an alternative, a prompt file written as p.jsonl and ./p.jsonl) is one choice,
    so every point is one job per cycle."""
    first: dict[Any, int] = {}
    for i, v in enumerate(values):
        if path == "dataset.path" and isinstance(v, str) and "://" not in v:
            v = os.path.normpath(v)  # one file, however its path is spelled
        first.setdefault(same_key(v), i)
    return sorted(first.values())


def twice(smap: SourceMap, path: str, loc: Loc, first: Loc) -> ConfigError:
    return smap.error(loc, f"'{path}' is also set on line {smap.line(first)}",
                      hint="keep one of them: the later one would win silently")


def check(path: str, loc: Loc, smap: SourceMap) -> None:
    why = check_path(path)
    if why:
        raise smap.error(loc, why, hint=suggest(path))


def axis(path: str, value: list[Any], loc: Loc, smap: SourceMap, problems: Problems,
         named: bool = False) -> Axis | None:
    """A list value as an axis (None: its mistakes went to problems). Each entry is an
    alternative, a map entry possibly several (its own lists are crossed within it)."""
    if not value:
        raise smap.error(loc, "empty list: an axis needs at least one value",
                         hint="remove the key or give it values")
    if named and not is_group(value):
        bad = next(i for i, v in enumerate(value) if not isinstance(v, dict))
        raise smap.error(loc + (bad,), f"'{path}' must be a list of maps of full paths (a "
                         "named group of alternatives)",
                         hint=f"e.g. {path}: [{{}}, {{dtype: float16, batch_size: 8}}]")
    alts: list[Alternative] = []
    locs: list[Loc] = []
    seen: set[str] = set()
    n = len(problems.errors)
    for i in distinct(value, path):  # a value listed twice is one alternative
        with problems.collecting():
            item, here = value[i], loc + (i,)
            made = expand("" if named else path, item, here, smap, relative=not named) \
                if isinstance(item, dict) else [{path: item}]
            for alt in made:
                validate(alt, here, smap)
                key = repr(sorted((p, same_key(v)) for p, v in alt.items()))
                if key not in seen:
                    seen.add(key)
                    alts.append(alt)
                    locs.append(here)
    if len(problems.errors) != n:
        return None
    return Axis(path, tuple(alts), tuple(locs))


def expand(prefix: str, item: dict[str, Any], loc: Loc, smap: SourceMap,
           relative: bool = True) -> list[Alternative]:
    """One map entry of a group as its alternatives: its lists crossed (a mini-grid)."""
    choices: list[list[Alternative]] = []
    written: dict[str, Loc] = {}
    for key, value in item.items():
        full = relative and "." in key and key.split(".", 1)[0] in HEADS
        path = key if full or not prefix else f"{prefix}.{key}"
        flat = _flatten(value, path, loc + (key,)) if isinstance(value, dict) and value \
            else [(path, value, loc + (key,))]
        for p, v, here in flat:
            check(p, loc, smap)
            if p in written:
                raise twice(smap, p, here, written[p])
            written[p] = here
            if isinstance(v, list):
                if not v:
                    raise smap.error(here, "empty list: an axis needs at least one value",
                                     hint="remove the key or give it values")
                opts: list[Alternative] = []
                for j in distinct(v, p):
                    opts += expand(p, v[j], here + (j,), smap) if isinstance(v[j], dict) \
                        and v[j] else [{p: v[j]}]
                choices.append(opts)
            else:
                choices.append([{p: v}])
    size = 1
    for c in choices:
        size *= len(c)
    if size > MAX_POINTS:
        raise smap.error(loc, f"this alternative alone makes {size} points (its lists are "
                         f"crossed), over the {MAX_POINTS} a grid may have",
                         hint="narrow its lists")
    out = []
    for combo in itertools.product(*choices):
        alt: Alternative = {}
        for part in combo:
            alt.update(part)
        out.append(alt)
    return out or [{}]


def validate(alt: Alternative, loc: Loc, smap: SourceMap) -> None:
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
        raise smap.error(loc, shown + describe_error(err),
                         hint=old_value_hint(field, err.get("input"))) from None
    except ValueError as exc:  # a path inside a value (_set)
        raise smap.error(loc, str(exc)) from None


def _whole_section(err: Any) -> bool:
    """A section's own rule across its fields (e.g. a poisson profile needs a rate): a value
    written alone cannot break it, so it is checked on whole combinations
    (llem.config.checks.check_sections)."""
    return err["type"] == "value_error" and (not err["loc"] or (
        len(err["loc"]) == 1 and err["loc"][0] in SECTION_MODELS))


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
