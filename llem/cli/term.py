"""How every command prints: rich on a terminal, plain text everywhere else.

On a terminal, tables have box art and colours and follow the terminal's width (a narrow
terminal folds cells instead of wrapping lines into garbage). Output that is not a terminal
(a pipe, a file, a test, CI) is plain: no colours, no box art, columns separated by spaces,
lines not wrapped (COLUMNS sets a width), so it greps and diffs.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from llem.errors import UserError

PLAIN_WIDTH = 1000  # off a terminal without COLUMNS: wide enough that nothing wraps


class Out(Console):
    """A Console whose tables lose their box art (and titles their centring) when it does
    not write to a terminal."""

    @property
    def plain(self) -> bool:
        return not self.is_terminal

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if not self.plain:
            super().print(*objects, **kwargs)
            return
        shown: list[Any] = []
        for o in objects:
            if isinstance(o, Table):
                plain_table(o)
                if o.title:  # a line of its own, not centred over the columns
                    shown.append(o.title)
                    o.title = None
            shown.append(o)
        with self.capture() as captured:
            super().print(*shown, **kwargs)
        text = captured.get()
        self.file.write("\n".join(line.rstrip() for line in text.split("\n")))
        self.file.flush()


def console(stderr: bool = False, **kwargs: Any) -> Out:
    """The console of a command: stdout (results) or stderr (progress, notices)."""
    out = Out(stderr=stderr, highlight=False, **kwargs)
    if out.plain and "width" not in kwargs:
        columns = os.environ.get("COLUMNS", "")
        out.width = int(columns) if columns.isdigit() and int(columns) > 0 else PLAIN_WIDTH
    return out


def plain_table(t: Table) -> None:
    """Columns separated by spaces: what `ps` or `df` print."""
    t.box = None
    t.show_edge = False
    t.pad_edge = False
    t.caption_justify = "left"


def plural(n: int | float, word: str, words: str | None = None) -> str:
    """'1 job', '2 jobs', '0 jobs'; words: an irregular plural ('1 copy', '2 copies')."""
    many = words if words is not None else word + "s"
    return f"{n:g} {word if n == 1 else many}" if isinstance(n, float) else \
        f"{n} {word if n == 1 else many}"


def to_second(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its timestamps cut to the second (what a person reads in a listing)."""
    return {k: v.replace(microsecond=0) if isinstance(v, dt.datetime) else v
            for k, v in row.items()}


def check_output(path: Path, option: str) -> None:
    """An output file llem replaces whole (a temp file renamed over it) must be a file: run
    as root, `-o /dev/null` replaced the device with a regular file; a FIFO was replaced
    too. `-` is no file name here (a file named '-' was written): export takes it as stdout
    before this check; elsewhere it is refused."""
    if str(path) == "-":
        raise UserError(f"{option} -: give a file name (this command writes a file, and '-' "
                        "would be a file named '-')")
    try:
        mode = path.lstat().st_mode
    except OSError:
        return  # nothing there yet (or a folder check says why)
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise UserError(f"{option} {path} is a device, pipe or socket, not a file: give a "
                        "file to write (or leave -o out to write to stdout)")
