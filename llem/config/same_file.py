"""Two values of one axis that name one file: `p.jsonl` and `../dir/p.jsonl` with the grid in
dir/, or a link to it. A job id comes from the path as written (rewriting paths would change
the ids of existing grids and break their resume), so each spelling ran as its own job on
the same prompts. Refused, naming both, where the file exists to be compared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llem.config.axes import Axis, same_key
from llem.config.loaded import Loaded

FILE_KEYS = frozenset({"dataset.path"})  # values read as local files (a URL or hub id: no)


def _identity(value: Any, base_dir: Path) -> tuple[int, int] | None:
    """The file's (device, inode), or None: not a local path, or nothing there."""
    if not isinstance(value, str) or "://" in value:
        return None
    try:
        st = (base_dir / Path(value).expanduser()).stat()
    except (OSError, RuntimeError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _axes(loaded: Loaded) -> list[Axis]:
    return [ax for part in loaded.parts()
            for ax in [*part.axes, *(a for s in part.per_backend.values() for a in s.axes)]
            if ax.paths() & FILE_KEYS]


def check_same_files(loaded: Loaded, base_dir: Path) -> None:
    """ConfigError at the second of two alternatives of one axis that differ only in how
    they spell one file."""
    for ax in _axes(loaded):
        seen: dict[str, tuple[dict[str, Any], Any]] = {}
        for alt, loc in zip(ax.alternatives, ax.locs, strict=True):
            ids = {p: _identity(v, base_dir) for p, v in alt.items() if p in FILE_KEYS}
            key = repr(sorted((p, ("file", ids[p]) if ids.get(p) else same_key(v))
                              for p, v in alt.items()))
            if key not in seen:
                seen[key] = (alt, loc)
                continue
            first, first_loc = seen[key]
            path = next(p for p in ids if first[p] != alt[p])
            raise loaded.source.error(
                loc, f"{alt[path]!r} names the same file as {first[path]!r} on line "
                f"{loaded.source.line(first_loc)} ('{path}')",
                hint="keep one of them: each spelling would run as its own job on the same "
                "prompts")
