"""User-facing errors: one clear line, exit code 2, no traceback."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_ERRORS = 20  # independent mistakes of one grid file reported at once


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


class ConfigErrors(ConfigError):
    """Several independent mistakes in one grid file, in the order of their lines.

    errors holds each as a ConfigError (one line each). str() is what the command line prints
    after its 'error: ' prefix: the messages joined by a newline and 'error: ', so every
    mistake is its own `error: FILE:LINE: ...` line. truncated: mistakes past MAX_ERRORS that
    were not collected (a last line says so).
    """

    def __init__(self, errors: Sequence[ConfigError], truncated: bool = False) -> None:
        first = errors[0]
        super().__init__("", file=first.file, line=first.line)
        self.errors = list(errors)
        self.truncated = truncated

    def lines(self) -> list[str]:
        """One message per mistake (without the 'error: ' prefix)."""
        out = [str(e) for e in self.errors]
        if self.truncated:
            out.append(f"{self.file or '<config>'}: stopped after {len(self.errors)} errors "
                       "(fix these and run again)")
        return out

    def __str__(self) -> str:
        return "\nerror: ".join(self.lines())


def errors_of(errors: Sequence[ConfigError], truncated: bool = False) -> ConfigError:
    """One mistake as itself; several as one ConfigErrors, in the order of their lines."""
    if len(errors) == 1 and not truncated:
        return errors[0]
    return ConfigErrors(sorted(errors, key=lambda e: e.line or 0), truncated)


class Problems:
    """Independent mistakes of one grid file, collected so that all are reported at once (at
    most MAX_ERRORS: the next one stops the collection)."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def add(self, err: ConfigError) -> None:
        for e in err.errors if isinstance(err, ConfigErrors) else [err]:
            if len(self.errors) >= MAX_ERRORS:
                raise errors_of(self.errors, truncated=True)
            self.errors.append(e)
        if isinstance(err, ConfigErrors) and err.truncated:
            raise errors_of(self.errors, truncated=True)

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Run a check; its ConfigError is remembered, not raised."""
        try:
            yield
        except ConfigError as err:
            self.add(err)

    def check(self) -> None:
        """Raise what was collected (nothing: return)."""
        if self.errors:
            raise errors_of(self.errors)
