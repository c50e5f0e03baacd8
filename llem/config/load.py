"""Load a grid file into a validated Campaign plus its axes; every mistake is one ConfigError."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llem.config.axes import Alternative, Axis, check_path, collect
from llem.config.models import BUILTIN_MODELS, Campaign
from llem.config.yaml_source import SourceMap, parse_yaml, read_yaml
from llem.errors import ConfigError

PATH_PREFIXES = ("./", "../", "/", "~")


@dataclass
class Loaded:
    """A validated campaign: the file's model, its fixed values and axes, and its source map."""

    campaign: Campaign
    fixed: Alternative
    axes: list[Axis]
    source: SourceMap
    path: Path | None = None


def load_campaign(path: str | Path, overrides: dict[str, Any] | None = None) -> Loaded:
    """Read, validate and prepare a grid file. overrides replace top-level keys (CLI flags)."""
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
        raise smap.error((), f"the file must be a map of settings, not a {type(data).__name__}")
    data = {**data, **(overrides or {})}
    known = list(Campaign.model_fields)
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
        got = err.get("input")
        msg = err["msg"] + (f" (got {got!r})" if not isinstance(got, dict | list) else "")
        if err["type"] == "missing":
            msg = "required key is missing"
        raise smap.error(loc, msg) from None
    campaign = campaign.model_copy(update={"models": [_model(m, i, base_dir, smap)
                                                      for i, m in enumerate(campaign.models)]})
    for section in ("include", "exclude"):
        for i, rule in enumerate(getattr(campaign, section)):
            for key in rule:
                why = check_path(key) if key not in ("model", "backend") else None
                if why:
                    raise smap.error((section, i, key), why)
    for rule in campaign.include:
        if rule in campaign.exclude:
            raise smap.error(("exclude",), f"rule {rule} is both included and excluded",
                             hint="remove it from one of the lists")
    fixed, axes = collect(campaign, smap)
    loaded = Loaded(campaign, fixed, axes, smap, path)
    _check_size(loaded)
    return loaded


def _model(model: str, i: int, base_dir: Path, smap: SourceMap) -> str:
    """Local paths (./, ../, /, ~) resolve against the grid file's folder and must exist."""
    if not model.strip():
        raise smap.error(("models", i), "empty model name")
    if model.startswith("llem:"):
        if model[5:] not in BUILTIN_MODELS:
            raise smap.error(("models", i), f"unknown built-in model '{model}'",
                             hint=f"known: {', '.join('llem:' + m for m in BUILTIN_MODELS)}")
        return model
    if not model.startswith(PATH_PREFIXES):
        return model  # a hub id (org/name)
    resolved = (base_dir / Path(model).expanduser()).resolve()
    if not resolved.exists():
        raise smap.error(("models", i), f"model path {resolved} does not exist",
                         hint="build one with `llem tiny-model DIR` or fix the path")
    return str(resolved)


def _check_size(loaded: Loaded) -> None:
    from llem.grid import count_points

    n = count_points(loaded)
    limit = loaded.campaign.max_points
    if n > limit:
        sizes = ", ".join(f"{a.key}: {len(a.alternatives)}" for a in loaded.axes
                          if len(a.alternatives) > 1)
        raise ConfigError(f"the grid has {n} points, over max_points={limit} ({sizes})",
                          file=loaded.source.file,
                          hint="narrow an axis, add exclude: rules, or raise max_points")

