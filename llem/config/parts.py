"""A Campaign as the parts llem expands: the sweep, each backend's per_backend values, and
each explicit experiment (llem.config.loaded.Loaded holds them).

per_backend: {vllm: {batch_size: 64, generate.presence_penalty: [0, 0.5]}} replaces the
grid's value or axis of each path it names for that backend's points only (its lists are
axes of that backend's points); a path the grid does not set applies to that backend alone.

experiments: [{backend: vllm, model: org/m, batch_size: 64, vllm.enforce_eager: true}, ...]
are points (or, with lists, small grids) run besides the sweep: each starts from the file's
fixed values (sections, grid: scalars, engine sections' scalars, per_backend scalars), not
from its axes; model(s) and backend(s) default to the file's. include/exclude shape the
sweep only. A point that both make is one job (the same job_id).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llem.backends import get_info
from llem.config.axes import (
    HEADS,
    POINT_SCALARS,
    Alternative,
    Axis,
    Where,
    _flatten,
    axis,
    check,
    check_path,
    is_group,
    named_group,
    suggest,
    twice,
    validate,
)
from llem.config.campaign import Campaign
from llem.config.loaded import Loaded, Scoped
from llem.config.models import ENGINE_SECTIONS, SECTIONS, Point
from llem.config.modes import served_name
from llem.config.names import old_name_hint
from llem.config.yaml_source import Loc, SourceMap
from llem.errors import ConfigError, Problems

# the file's own top-level keys (llem.config.campaign.Campaign's, less the grid parameters
# of the same name): written under grid: each became a named group that did the opposite
TOP_ONLY = frozenset({"name", "store", "cycles", "order", "interleave", "grid",
                      "environments", "scheduling", "include", "exclude", "max_points",
                      "per_backend", "experiments"})
EXPERIMENT_KEYS = {"model": "models", "models": "models", "backend": "backends",
                   "backends": "backends"}


def build(c: Campaign, smap: SourceMap, problems: Problems, path: Path | None = None,
          check_backends: bool = True,
          model: Callable[[str, Loc], str] | None = None) -> Loaded | None:
    """The loaded campaign (None when a mistake leaves nothing to build on; every mistake
    is in problems). model(name, loc) checks and resolves a model name."""
    entries: list[tuple[str, Any, Loc]] = []
    for section in SECTIONS:
        entries += _flatten(getattr(c, section), section, (section,))
    for section in ENGINE_SECTIONS:
        entries += _flatten(c.engine_section(section), section, (section,))
    entries += _flatten(c.grid, "", ("grid",))
    fixed, axes, where = values(entries, smap, problems)
    models = tuple({"model": m} for m in c.models)
    axes.insert(0, Axis("model", models, tuple(("models", i) for i in range(len(models)))))
    experiments = [_experiment(c, i, e, smap, problems, model)
                   for i, e in enumerate(c.experiments)]
    extra = [b for e in experiments if e for b in e.part_backends() if b not in c.backends]
    union = c.model_copy(update={"backends": [*c.backends, *dict.fromkeys(extra)]})
    sweep = Loaded(union, fixed, axes, smap, path, where, backends=list(c.backends))
    sweep.per_backend = _per_backend(c, union.backends, smap, problems)
    for e in experiments:
        if e is not None:
            e.campaign = union.model_copy(update={"models": e.campaign.models,
                                                  "backends": e.part_backends()})
            _inherit(e, sweep)
            sweep.experiments.append(e)
    for part in sweep.parts():
        _check_nesting(part, smap, problems)
    _check_columns(sweep, smap, problems)
    if check_backends:
        _check_backends(sweep, smap, problems)
    return sweep


def values(entries: list[tuple[str, Any, Loc]], smap: SourceMap,
           problems: Problems) -> tuple[Alternative, list[Axis], Where]:
    """Fixed values and axes of one map's entries, each value validated. A path written
    twice (dotted and nested, in a section and in grid:, as a value and as an axis) is a
    mistake naming both lines; groups may override a fixed value (that is what they are
    for)."""
    fixed: Alternative = {}
    found = Found()  # the same, indexed for validating the next
    where: Where = {}
    axes: list[Axis] = []
    written: dict[str, Loc] = {}  # path of a fixed value or plain axis -> where
    for path, value, loc in entries:
        with problems.collecting():
            group = is_group(value)
            named = named_group(path, value) or (
                isinstance(value, list) and any(isinstance(v, dict) for v in value) and
                named_group(path, []))
            if loc[:1] in (("grid",), ("experiments",)) and path in TOP_ONLY:
                raise smap.error(loc, f"'{path}' is a key of the file's top level, not a grid "
                                 f"parameter: under {loc[0]}: it was taken as a named group "
                                 "of alternatives", hint=f"move {path}: to the top level")
            if named and path != "variants":
                close = difflib.get_close_matches(path, [*HEADS, *POINT_SCALARS], n=1,
                                                  cutoff=0.8)
                if close:  # a misspelled parameter, not a group's name
                    raise smap.error(loc, f"unknown parameter '{path}' (a list of maps under "
                                     "a name that is no parameter is a named group of full "
                                     "paths)", hint=f"did you mean '{close[0]}'?")
            if path == "variants" and not group:
                bad = next((i for i, v in enumerate(value) if not isinstance(v, dict)),
                           None) if isinstance(value, list) and value else None
                raise smap.error(loc if bad is None else loc + (bad,),
                                 "'variants' must be a list of maps of full paths",
                                 hint="e.g. variants: [{}, {dtype: float16, batch_size: 8}]")
            if not group and not named:
                check(path, loc, smap)  # a group's own key is a prefix or a name
                if path in written:
                    raise twice(smap, path, loc, written[path])
                written[path] = loc
            if isinstance(value, list):
                ax = axis(path, value, loc, smap, problems, named=named)
                if ax is not None:
                    axes.append(ax)
            else:
                validate({**found.context(path), path: value}, loc, smap)
                found.add(path, value)
                fixed[path] = value
                where[path] = loc
    _check_crossed(axes, smap, problems)
    return fixed, axes, where


class Found:
    """The fixed values found good, and what a new one is validated with: llem's own fields
    (rules across them) and, of the engine and generate arguments (Point keeps them as they
    are), only those the new path reaches inside or that reach inside it. Validating each
    with every earlier one made a section of 30,000 keys take minutes."""

    OPAQUE = (*ENGINE_SECTIONS, "generate")

    def __init__(self) -> None:
        self.own: Alternative = {}  # llem's fields
        self.opaque: Alternative = {}  # engine and generate arguments
        self.under: dict[str, str] = {}  # a proper prefix of an opaque path -> that path

    def context(self, path: str) -> Alternative:
        if path.split(".", 1)[0] not in self.OPAQUE:
            return self.own
        parts = path.split(".")
        near = {p: self.opaque[p] for i in range(1, len(parts))
                if (p := ".".join(parts[:i])) in self.opaque}
        if path in self.under:
            near[self.under[path]] = self.opaque[self.under[path]]
        return near

    def add(self, path: str, value: Any) -> None:
        if path.split(".", 1)[0] not in self.OPAQUE:
            self.own[path] = value
            return
        self.opaque[path] = value
        parts = path.split(".")
        for i in range(1, len(parts)):
            self.under.setdefault(".".join(parts[:i]), path)


def _check_crossed(axes: list[Axis], smap: SourceMap, problems: Problems) -> None:
    """Two axes (groups) that both set a path: crossed, the later one would win silently
    in their combinations, whichever was meant."""
    owner: dict[str, int] = {}  # path -> the first axis that sets it (pairs: 30,000 axes
    for j, later in enumerate(axes):  # of one value each took minutes)
        paths = later.paths()
        shared = [owner[p] for p in paths if p in owner]
        if shared:
            first = axes[min(shared)]
            both = sorted(first.paths() & paths)
            problems.add(smap.error(later.locs[0][:-1] or later.locs[0], f"'{both[0]}' "
                                    f"is also set by '{first.key}' on line "
                                    f"{smap.line(first.locs[0])}: crossed, one would "
                                    "override the other silently",
                                    hint="set it in one of them"))
        for p in paths:
            owner.setdefault(p, j)


def _per_backend(c: Campaign, backends: list[str], smap: SourceMap,
                 problems: Problems) -> dict[str, Scoped]:
    out: dict[str, Scoped] = {}
    for name, section in c.per_backend.items():
        loc: Loc = ("per_backend", name)
        with problems.collecting():
            if name not in backends:
                raise smap.error(loc, f"per_backend values for '{name}', which is not in "
                                 "backends:", hint=f"known here: {', '.join(backends)}")
            if not isinstance(section, dict) or not section:
                raise smap.error(loc, "must be a map of parameter paths and their values",
                                 hint=f"e.g. per_backend: {{{name}: {{batch_size: 64}}}}")
            entries = _flatten(section, "", loc)
            for path, value, here in entries:
                head = path.split(".", 1)[0]
                if head in ENGINE_SECTIONS:
                    raise smap.error(here, f"engine arguments are written in the "
                                     f"'{head}:' section, which applies to {head} only",
                                     hint=f"move it to {head}: {{{path.split('.', 1)[-1]}: "
                                     "...}")
                if check_path(path) and not is_group(value) and not old_name_hint(path):
                    close = suggest(path)
                    raise smap.error(here, f"unknown parameter '{path}': per_backend takes "
                                     "llem's parameters", hint=f"an engine argument of {name}? "
                                     f"write it in the {name}: section" +
                                     (f"; or {close}" if close else ""))
            fixed, axes, where = values(entries, smap, problems)
            out[name] = Scoped(fixed, axes, where)
    return out


def _experiment(c: Campaign, i: int, exp: dict[str, Any], smap: SourceMap, problems: Problems,
                model: Callable[[str, Loc], str] | None) -> Loaded | None:
    loc: Loc = ("experiments", i)
    if not exp:
        problems.add(smap.error(loc, "an empty experiment is the file's defaults",
                                hint="give it keys, e.g. {backend: vllm, batch_size: 64}"))
        return None
    n = len(problems.errors)
    chosen: dict[str, list[str]] = {"models": list(c.models), "backends": list(c.backends)}
    for key, what in EXPERIMENT_KEYS.items():
        if key not in exp:
            continue
        with problems.collecting():
            if key == what and what[:-1] in exp:
                raise smap.error(loc + (key,), f"'{what[:-1]}' and '{what}' both set",
                                 hint="keep one of them")
            value = exp[key]
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not names or \
                    not all(isinstance(v, str) for v in names):
                raise smap.error(loc + (key,), f"must be a name or a list of names "
                                 f"(e.g. {key}: {'vllm' if what == 'backends' else 'org/m'})")
            if what == "backends":
                for b in names:
                    try:
                        get_info(b)
                    except KeyError as exc:
                        raise smap.error(loc + (key,), str(exc.args[0])) from None
            elif model is not None:
                names = [model(m, loc + (key,)) for m in names]
            chosen[what] = list(dict.fromkeys(names))
    rest = {k: v for k, v in exp.items() if k not in EXPERIMENT_KEYS}
    fixed, axes, where = values(_flatten(rest, "", loc), smap, problems)
    if len(problems.errors) != n:
        return None
    models = tuple({"model": m} for m in chosen["models"])
    axes.insert(0, Axis("model", models, (loc,) * len(models)))
    campaign = c.model_copy(update={"models": chosen["models"],
                                    "backends": chosen["backends"]})
    return Loaded(campaign, fixed, axes, smap, None, where, backends=chosen["backends"],
                  rules=False, label=f"experiment {i + 1}")


def _inherit(exp: Loaded, sweep: Loaded) -> None:
    """An experiment starts from the file's fixed values; its own win."""
    own = set(exp.fixed) | {p for ax in exp.axes for p in ax.paths()}
    exp.fixed = {**{p: v for p, v in sweep.fixed.items() if p not in own}, **exp.fixed}
    exp.where = {**{p: w for p, w in sweep.where.items() if p not in own}, **exp.where}
    exp.per_backend = {b: Scoped({p: v for p, v in s.fixed.items() if p not in own}, [],
                                 dict(s.where))
                       for b, s in sweep.per_backend.items()}


def _check_nesting(part: Loaded, smap: SourceMap, problems: Problems) -> None:
    """No path may reach inside another path's non-map value (dataset.path and
    dataset.path.x), among values that can meet in a point: alternatives of one axis never
    do."""
    for b in part.part_backends():
        where_b = part.where_for(b)  # once: per value, a section of 30,000 keys took minutes
        used: list[tuple[str, Any, Loc, int]] = [
            (p, v, where_b.get(p, ("grid",)), -1) for p, v in part.fixed_for(b).items()]
        used += [(p, v, ax.locs[j], i) for i, ax in enumerate(part.axes_for(b))
                 for j, alt in enumerate(ax.alternatives) for p, v in alt.items()]
        leaves: dict[str, set[int]] = {}
        for p, v, _, i in used:
            if not isinstance(v, dict):
                leaves.setdefault(p, set()).add(i)
        for path, _, loc, i in used:
            parts = path.split(".")
            for n in range(1, len(parts)):
                where = leaves.get(".".join(parts[:n]), set())
                if where - {i} or (i == -1 and where):
                    problems.add(smap.error(loc, f"'{path}' reaches inside "
                                            f"'{'.'.join(parts[:n])}', which is set to a "
                                            "value", hint="keep one of them"))
                    return


def _check_backends(loaded: Loaded, smap: SourceMap, problems: Problems) -> None:
    """Unknown backends, engine sections for absent backends, unsupported parameters (each
    mistake once, at the first value that makes it)."""
    c = loaded.campaign
    for section in ENGINE_SECTIONS:
        if c.engine_section(section) and section not in c.backends:
            problems.add(smap.error((section,), f"engine settings for '{section}', which is "
                                    "not in backends:",
                                    hint=f"add {section} to backends or remove this"))
    said: set[tuple[str, str]] = set()
    infos: dict[str, Any] = {}
    for i, name in enumerate(c.backends):
        try:
            infos[name] = get_info(name)
        except KeyError as exc:
            problems.add(smap.error(("backends", i), str(exc.args[0])))
    defaults = Point(backend="noop", model="x")
    for part in loaded.parts():
        for path, loc in _engine_paths(part):
            head = path.split(".", 1)[0]
            if head not in c.backends and not c.engine_section(head) and \
                    ("", path) not in said:
                said.add(("", path))
                problems.add(smap.error(loc, f"'{path}' is a setting of '{head}', which is "
                                        "not in backends:",
                                        hint=f"add {head} to backends or remove it"))
    for name, path, value, loc in loaded.used():
        if name not in infos or (name, path) in said:
            continue
        try:
            _supports(name, infos[name], path, value, loc, defaults, smap)
        except ConfigError as err:
            said.add((name, path))
            problems.add(err)


def _check_columns(sweep: Loaded, smap: SourceMap, problems: Problems) -> None:
    """Each engine argument is stored as the column engine_<key>, and column names ignore
    case in DuckDB: two keys that differ only in case would read back as engine_x and
    engine_x_1."""
    seen: dict[str, str] = {}
    said: set[str] = set()
    for part in sweep.parts():
        for path, loc in _engine_paths(part):
            key = path.split(".")[1]
            first = seen.setdefault(key.lower(), key)
            if first != key and key not in said:
                said.add(key)
                problems.add(smap.error(loc, f"engine arguments '{first}' and '{key}' differ "
                                        f"only in case: both would be the store's column "
                                        f"engine_{key.lower()}", hint="keep one spelling"))


def _engine_paths(part: Loaded) -> list[tuple[str, Loc]]:
    out = [(p, part.where.get(p, ("grid",))) for p in part.fixed
           if p.split(".", 1)[0] in ENGINE_SECTIONS]
    out += [(p, ax.locs[j]) for ax in part.axes for j, alt in enumerate(ax.alternatives)
            for p in alt if p.split(".", 1)[0] in ENGINE_SECTIONS]
    return out


def _supports(name: str, info: Any, path: str, value: Any, loc: Loc, defaults: Point,
              smap: SourceMap) -> None:
    if path == "mode" and value == "server" and info.server is None:
        raise smap.error(loc, f"backend '{name}' has no server mode",
                         hint="use mode: offline, or a backend with a server")
    if path == "dtype" and value != "auto" and served_name(name):  # each a label, no more
        raise smap.error(loc, f"backend '{name}' sends requests to a server that already "
                         "runs, in the dtype it was started with", hint="remove dtype, or "
                         "scope it to the backends that load the model: per_backend: "
                         "{<backend>: {dtype: ...}}")
    if path in POINT_SCALARS and path not in ("dtype", "batch_size", "mode") and \
            path != "streaming" and value != getattr(defaults, path) and \
            path not in info.supports:
        raise smap.error(loc, f"backend '{name}' does not support '{path}'",
                         hint="remove it, or scope it to the backends that do: "
                         "per_backend: {<backend>: {" + path + ": ...}}")
    if path == "streaming" and value and not info.streaming:
        raise smap.error(loc, f"backend '{name}' cannot measure streaming "
                         "(per-token) latency", hint="set streaming: false or use "
                         "another backend")

