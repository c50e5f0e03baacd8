"""User-facing errors: one clear line, exit code 2, no traceback."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """text with control characters (newlines included) shown as escapes: one line, always."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class UserError(Exception):
    """A mistake the user can fix: the message is the whole story (what, where, how to fix)."""

    exit_code = 2

    def __str__(self) -> str:
        return one_line(super().__str__())


class ConfigError(UserError):
    """A problem in a grid file, located by file, key and line where known."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 line: int | None = None, hint: str | None = None) -> None:
        where = file or "<config>"
        if line is not None:
            where += f":{line}"
        text = f"{where}: "
        if key:
            text += f"'{key}': "
        text += message
        if hint:
            text += f" ({hint})"
        super().__init__(text)
        self.file, self.key, self.line = file, key, line
