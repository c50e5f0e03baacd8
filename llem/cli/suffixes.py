"""What a file name's suffix says it holds, so that a command never writes one format under
another's name (`export -o runs.parquet` wrote CSV there, `report -o plots.png` HTML), nor
under a name that is not its own: `export -o grid.yaml` replaced a grid file with CSV and
`report -o x.yaml` with HTML, so -o must end in a suffix of the format written."""

from __future__ import annotations

from pathlib import Path

from llem.errors import UserError

SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
            ".parquet": "parquet", ".html": "html", ".htm": "html", ".png": "png",
            ".pdf": "pdf", ".svg": "svg", ".jpg": "jpeg", ".jpeg": "jpeg", ".xlsx": "xlsx",
            ".md": "markdown"}
OWN = {"csv": ".csv", "jsonl": ".jsonl", "json": ".json", "parquet": ".parquet",
       "html": ".html"}  # the suffix to suggest for each format written


def named_format(path: Path) -> str | None:
    """The format path's suffix names, or None (no suffix, or one that names none)."""
    return SUFFIXES.get(path.suffix.lower())


def output_format(path: Path | None, given: str | None, writes: tuple[str, ...],
                  option: str, default: str, hint: str = "") -> str:
    """The format to write to path: the one given, else the one its suffix names, else
    default; refused where the suffix names a format other than the one written, or none
    (`-o grid.yaml` would be replaced with another format: each output wears its own)."""
    named = named_format(path) if path is not None else None
    if named is not None and named not in writes:
        names = " or ".join(k for k, v in SUFFIXES.items() if v in writes and k != ".htm")
        raise UserError(f"{option} {path}: a {named} file's name, and this writes "
                        f"{' or '.join(writes)}: name it {names}{hint}")
    fmt = given or named or default
    if path is not None and named is None:  # .yaml, .txt, none: a grid file was replaced
        there = "; the file there is left as it is" if path.exists() else ""
        name = path.name + OWN[fmt] if not path.suffix else path.with_suffix(OWN[fmt]).name
        raise UserError(f"{option} {path}: this writes {fmt}, to a file named "
                        f"{_named_for(fmt)} (e.g. {path.parent / name}){there}")
    if named is not None and named != fmt:
        raise UserError(f"{option} {path}: a {named} file's name, and --format {fmt} was "
                        f"given: name it for what it holds, or leave --format out")
    return fmt


def _named_for(fmt: str) -> str:
    """The suffixes a file of fmt may have: '.csv', '.html or .htm'."""
    return " or ".join(k for k, v in SUFFIXES.items() if v == fmt)
