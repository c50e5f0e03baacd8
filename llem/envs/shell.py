"""What goes into the `bash -c` line Ray starts a `py_executable` worker with (Ray 2.60
RuntimeEnvContext.exec_worker): the executable unquoted, its arguments quoted."""

from __future__ import annotations

import shlex


def ray_command(python: str, *args: str) -> str:
    """The command line Ray hands to `bash -c` to start a worker of a `py_executable`
    runtime_env (Ray 2.60 RuntimeEnvContext.exec_worker): the executable as it is, unquoted,
    its arguments quoted. The probe runs the same string the same way."""
    return " ".join(["exec", python, *(shlex.quote(a) for a in args)])


def shell_problem(python: str) -> str | None:
    """Why python cannot go into Ray's unquoted `bash -c` (a space splits it; $, `, ;, |,
    quotes, globs run or change something), if so. Only what shlex leaves unquoted is safe:
    letters, digits and @%+=:,./-."""
    if python and shlex.quote(python) == python:
        return None
    bad = sorted({ch for ch in python if shlex.quote(ch) != ch}) if python else []
    what = ", ".join("space" if ch == " " else repr(ch) for ch in bad) or "an empty path"
    return (f"the interpreter path {python!r} has {what}: Ray starts a venv's python through "
            "an unquoted `bash -c`, which would split or run it; use a path of letters, "
            "digits and @%+=:,./- only (e.g. a symlink to the venv)")
