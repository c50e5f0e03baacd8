"""What a file name's suffix says it holds, so that a command never writes one format under
another's name (`export -o runs.parquet` wrote CSV there, `report -o plots.png` HTML)."""

from __future__ import annotations

from pathlib import Path

from llem.errors import UserError

SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
            ".parquet": "parquet", ".html": "html", ".htm": "html", ".png": "png",
            ".pdf": "pdf", ".svg": "svg", ".jpg": "jpeg", ".jpeg": "jpeg", ".xlsx": "xlsx",
            ".md": "markdown"}


def named_format(path: Path) -> str | None:
    """The format path's suffix names, or None (no suffix, or one that names none)."""
    return SUFFIXES.get(path.suffix.lower())


def output_format(path: Path | None, given: str | None, writes: tuple[str, ...],
                  option: str, default: str, hint: str = "") -> str:
    """The format to write to path: the one given, else the one its suffix names, else
    default; refused where the suffix names a format other than the one written."""
    named = named_format(path) if path is not None else None
    if named is not None and named not in writes:
        names = " or ".join(k for k, v in SUFFIXES.items() if v in writes and k != ".htm")
        raise UserError(f"{option} {path}: a {named} file's name, and this writes "
                        f"{' or '.join(writes)}: name it {names}{hint}")
    fmt = given or named or default
    if named is not None and named != fmt:
        raise UserError(f"{option} {path}: a {named} file's name, and --format {fmt} was "
                        f"given: name it for what it holds, or leave --format out")
    return fmt
