"""Load a grid file into a validated Campaign plus its axes; every mistake is one ConfigError."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llem.config.axes import (
    check_path,
    collect,
    flatten_rule,
    section_values,
    suggest,
)
from llem.config.checks import check_backend_options, check_cross_fields
from llem.config.environments import EnvChoice
from llem.config.grid import count_points, iter_jobs
from llem.config.loaded import Loaded
from llem.config.models import ENGINE_SECTIONS, Campaign, describe_error
from llem.config.overrides import merge_overrides
from llem.config.yaml_source import SourceMap, parse_yaml, read_yaml
from llem.credentials import looks_secret
from llem.errors import ConfigError
from llem.models.builtin import BUILTIN_MODELS, PREFIX, is_builtin

PATH_PREFIXES = ("./", "../", "/", "~")
TYPE_NAMES = {"list": "a list", "str": "a single value", "int": "a number",
              "float": "a number", "bool": "a single value"}
MISSING_HINTS = {"name": "add e.g. name: my-campaign",
                 "models": "add e.g. models: [org/model-name]; hub ids or ./local/paths"}


def load_campaign(path: str | Path, overrides: dict[str, Any] | None = None) -> Loaded:
    """Read, validate and prepare a grid file. overrides (CLI flags): top-level keys or
    dotted parameter paths, each replacing what the file set (llem.config.overrides)."""
    p = Path(path)
    data, smap = read_yaml(p)
    return from_data(data, smap, base_dir=p.resolve().parent, overrides=overrides, path=p)


def load_text(text: str, name: str = "<string>", base_dir: Path | None = None) -> Loaded:
    data, smap = parse_yaml(text, name)
    return from_data(data, smap, base_dir=base_dir or Path.cwd())


def from_data(data: Any, smap: SourceMap, base_dir: Path, overrides: dict[str, Any] | None = None,
              path: Path | None = None) -> Loaded:
    if data is None:
        raise smap.error((), "the file is empty", hint="see configs/demo.yaml for an example")
    if not isinstance(data, dict):
        kind = TYPE_NAMES.get(type(data).__name__, type(data).__name__)
        raise smap.error((), f"the file must be a map of settings (key: value lines), not "
                         f"{kind}", hint="see configs/demo.yaml for an example", line=1)
    data = merge_overrides(data, overrides or {})
    _refuse_credentials(data, (), smap)
    known = [*Campaign.model_fields, *ENGINE_SECTIONS]
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise smap.error((key,), "unknown key",
                             hint=f"did you mean '{close[0]}'?" if close else
                             f"known keys: {', '.join(known)}")
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        raise smap.error(loc, describe_error(err), hint=MISSING_HINTS.get(str(loc[0]))
                         if err["type"] == "missing" else None) from None
    campaign = campaign.model_copy(update={
        "models": [_model(m, i, base_dir, smap) for i, m in enumerate(campaign.models)],
        "include": _rules(campaign.include, "include", smap),
        "exclude": _rules(campaign.exclude, "exclude", smap)})
    for i, rule in enumerate(campaign.include):
        for j, ex in enumerate(campaign.exclude):
            if _covers(ex, rule):
                raise smap.error(("exclude", j), f"this rule drops every point that include "
                                 f"rule {i + 1} ({rule}) keeps",
                                 hint="remove it from one of the lists")
    _check_environments(campaign, smap)
    fixed, axes, where = collect(campaign, smap)
    loaded = Loaded(campaign, fixed, axes, smap, path, where)
    _check_datasets(loaded)
    _check_size(loaded)
    _check_not_empty(loaded)
    check_cross_fields(loaded)
    check_backend_options(loaded, base_dir)
    return loaded


def _check_environments(campaign: Campaign, smap: SourceMap) -> None:
    """environments: keys are backends of this grid, values valid EnvChoice maps."""
    for backend, choice in campaign.environments.items():
        if backend not in campaign.backends:
            raise smap.error(("environments", backend), f"an environment for '{backend}', "
                             "which is not in backends:", hint=f"known here: "
                             f"{', '.join(campaign.backends)}")
        try:
            EnvChoice.model_validate(choice if choice is not None else {})
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ("environments", backend, *err["loc"])
            raise smap.error(loc, describe_error(err), hint="kinds: current, venv, pip, uv, "
                             "image; see jobs/README.md") from None


def _rules(rules: list[dict[str, Any]], section: str, smap: SourceMap) -> list[dict[str, Any]]:
    """include/exclude rules as flat {path: value}; every path must name a parameter."""
    out = []
    for i, rule in enumerate(rules):
        if not rule:
            raise smap.error((section, i), "empty rule: it would match every point",
                             hint="give it keys, e.g. {batch_size: 8}")
        flat = flatten_rule(rule)
        for key in flat:
            why = check_path(key) if key not in ("model", "backend") else None
            if why:
                raise smap.error((section, i, key.split(".", 1)[0]), why, hint=suggest(key))
        out.append(flat)
    return out


def _covers(ex: dict[str, Any], inc: dict[str, Any]) -> bool:
    """Does exclude rule ex match every point that include rule inc matches?"""
    for key, want in ex.items():
        if key not in inc:
            return False
        have = inc[key] if isinstance(inc[key], list) else [inc[key]]
        allowed = want if isinstance(want, list) else [want]
        if not all(h in allowed for h in have):
            return False
    return True


def _check_datasets(loaded: Loaded) -> None:
    """Every dataset the grid can produce names its source completely (no file is read)."""
    for values, where in section_values(loaded.fixed, loaded.where, loaded.axes, "dataset."):
        source = values.get("dataset.source", "builtin")
        if source in ("file", "hf") and not values.get("dataset.path"):
            loc = where.get("dataset.source", ("dataset",))
            what = "a prompt file (.jsonl or .txt)" if source == "file" else "the dataset id"
            raise loaded.source.error(loc, f"dataset.source is '{source}' but dataset.path "
                                      "is not set", hint=f"add dataset.path: {what}")


def _model(model: str, i: int, base_dir: Path, smap: SourceMap) -> str:
    """Local paths (./, ../, /, ~) resolve against the grid file's folder and must exist."""
    if not model.strip() or any(ord(ch) < 32 for ch in model):
        raise smap.error(("models", i), f"bad model name {model!r}",
                         hint="a hub id (org/name), a ./local/path or llem:tiny")
    if is_builtin(model):
        if model.removeprefix(PREFIX) not in BUILTIN_MODELS:
            raise smap.error(("models", i), f"unknown built-in model '{model}'",
                             hint=f"known: {', '.join(PREFIX + m for m in BUILTIN_MODELS)}")
        return model
    if not model.startswith(PATH_PREFIXES):
        return model  # a hub id (org/name)
    try:
        resolved = (base_dir / Path(model).expanduser()).resolve()
    except (RuntimeError, OSError) as exc:  # ~nosuchuser, a symlink loop
        raise smap.error(("models", i), f"cannot resolve model path {model!r}: {exc}") \
            from None
    if not resolved.exists():
        raise smap.error(("models", i), f"model path {resolved} does not exist",
                         hint="build one with `llem tiny-model DIR` or fix the path")
    return str(resolved)


def _refuse_credentials(value: Any, loc: tuple[Any, ...], smap: SourceMap) -> None:
    """A token in a grid file would be hashed into job ids and stored with every row: refuse
    it, without echoing it, and say where credentials go instead."""
    if isinstance(value, dict):
        for k, v in value.items():
            if looks_secret(str(k), v):
                raise smap.error((*loc, k), "looks like a credential; llem does not take "
                                 "credentials from grid files (they would be stored with "
                                 "every result)", hint="set HF_TOKEN (or another credential "
                                 "variable) in the environment, or LLEM_SECRETS_FILE")
            _refuse_credentials(v, (*loc, k), smap)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if looks_secret("", v):
                raise smap.error((*loc, i), "looks like a credential; llem does not take "
                                 "credentials from grid files",
                                 hint="set HF_TOKEN in the environment, or LLEM_SECRETS_FILE")
            _refuse_credentials(v, (*loc, i), smap)


def _check_not_empty(loaded: Loaded) -> None:
    """include/exclude rules that together leave no point: say so, before Ray starts."""
    c = loaded.campaign
    if not (c.include or c.exclude):
        return

    if next(iter_jobs(loaded), None) is None:
        raise ConfigError(f"the grid is empty: include/exclude rules drop all "
                          f"{count_points(loaded)} points", file=loaded.source.file,
                          hint="loosen an exclude rule or widen an include rule")


def _check_size(loaded: Loaded) -> None:
    n = count_points(loaded)
    limit = loaded.campaign.max_points
    if n > limit:
        sizes = ", ".join(f"{a.key}: {len(a.alternatives)}" for a in loaded.axes
                          if len(a.alternatives) > 1)
        raise ConfigError(f"the grid has {n} points, over max_points={limit} ({sizes})",
                          file=loaded.source.file,
                          hint="narrow an axis, add exclude: rules, or raise max_points")

