"""Combinations a backend library would reject, found when the grid is loaded.

Today: the transformers model options (llem.backends.transformers_options). Paths of local
adapters and assistant models resolve against the grid file's folder, like models do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llem.backends.transformers_options import check_options
from llem.config.yaml_source import Loc

PATH_KEYS = ("transformers.adapter", "transformers.assistant_model")
PATH_PREFIXES = ("./", "../", "/", "~")


def check_backend_options(loaded: Any, base_dir: Path) -> None:
    """Raise ConfigError (file, line, key) for the first job transformers would reject."""
    if "transformers" not in loaded.campaign.backends:
        return
    used = set(loaded.fixed) | {p for ax in loaded.axes for alt in ax.alternatives for p in alt}
    if not any(p.startswith("transformers.") for p in used):
        return  # no options: nothing to check, and no grid walk for a large grid
    _resolve_paths(loaded, base_dir)
    from llem.grid import groups

    seen: set[str] = set()
    for group in groups(loaded):
        if group.first.backend != "transformers":
            continue
        for point in group.points():
            combo = repr((sorted(point.engine.items()), point.resources.gpus_per_job,
                          point.batch_size, point.streaming))
            if combo in seen:
                continue
            seen.add(combo)
            problem = check_options(point.engine, gpus=point.resources.gpus_per_job,
                                    batch_size=point.batch_size, streaming=point.streaming)
            if problem:
                key, why = problem
                raise loaded.source.error(_where(loaded, f"transformers.{key}"), why)


def _where(loaded: Any, path: str) -> Loc:
    """Where path (or a setting under it) was written: fixed value, else an axis."""
    for p, loc in loaded.where.items():
        if p == path or p.startswith(path + "."):
            return tuple(loc)
    for ax in loaded.axes:
        for alt, loc in zip(ax.alternatives, ax.locs):
            if any(p == path or p.startswith(path + ".") for p in alt):
                return tuple(loc)
    return (path.split(".", 1)[0],)


def _resolve_paths(loaded: Any, base_dir: Path) -> None:
    """./relative adapter and assistant paths become absolute; a missing one is an error."""
    places: list[tuple[dict[str, Any], str, Loc]] = [
        (loaded.fixed, p, loaded.where.get(p, ("transformers",))) for p in PATH_KEYS
        if p in loaded.fixed]
    for ax in loaded.axes:
        for alt, loc in zip(ax.alternatives, ax.locs):
            places += [(alt, p, loc) for p in PATH_KEYS if p in alt]
    for values, path, loc in places:
        value = values[path]
        if not isinstance(value, str) or not value.startswith(PATH_PREFIXES):
            continue
        resolved = (base_dir / Path(value).expanduser()).resolve()
        if not resolved.exists():
            raise loaded.source.error(loc, f"{path.split('.', 1)[1]} path {resolved} does not "
                                      "exist", hint="paths are relative to the grid file")
        values[path] = str(resolved)
