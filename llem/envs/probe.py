"""Ask an environment's python for its Python and Ray versions, trusting nothing it does.

`environments.<backend>.python` is the user's path and may name any program: one that
prints nothing, prints other things, prints forever, never exits, or leaves children
behind. Its answer is read bounded (time and bytes), its process group killed when done,
and anything but one JSON object of the expected shape is a one-line reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import subprocess
import time
from pathlib import Path

from llem.config.yaml_source import shown

TIMEOUT_S = 60.0  # a cold venv on a network filesystem takes seconds, not minutes
MAX_OUTPUT = 64 * 1024  # the answer is one short line; more is not a Python interpreter
VERSION = re.compile(r"\d+\.\d+")
CODE = ("import importlib.metadata as m, json, sys\n"
        "def v(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return None\n"
        "print(json.dumps({'ray': v('ray'), 'python': '%d.%d' % sys.version_info[:2]}))")

Found = dict[str, str | None]


def program_problem(python: Path) -> str | None:
    """Why python cannot be run at all (a folder, not executable), if so."""
    if python.is_dir():
        return "a folder, not a Python interpreter"
    if not os.access(python, os.X_OK):
        return "not executable (not a Python interpreter, or missing its x permission)"
    return None


def ask(argv: list[str], env: dict[str, str],
        timeout: float = TIMEOUT_S) -> tuple[Found | None, str]:
    """Run argv (which runs CODE) and read its versions; (None, why) when it did not answer."""
    try:
        rc, out, err, why = _run(argv, env, timeout)
    except OSError as exc:
        return None, f"does not run: {exc.strerror or exc}"
    if why:
        return None, why
    if rc != 0:
        last = (err.strip() or out.strip()).splitlines()
        said = f": {shown(last[-1])}" if last else ", printing nothing"
        return None, f"fails (exit status {rc}){said}"
    return parse(out, err)


def parse(out: str, err: str) -> tuple[Found | None, str]:
    """The versions in the last line of out, or why out is not what CODE prints."""
    lines = out.strip().splitlines()
    if not lines:
        said = f" (on stderr: {shown(err.strip().splitlines()[-1])})" if err.strip() else ""
        return None, f"not a Python interpreter: asked for its versions, it printed nothing{said}"
    try:
        found = json.loads(lines[-1])
    except ValueError:
        found = None
    ok = isinstance(found, dict) and isinstance(found.get("python"), str) and \
        VERSION.fullmatch(found["python"]) is not None and \
        (found.get("ray") is None or isinstance(found.get("ray"), str))
    if not ok:
        more = f" and {len(lines) - 1} more lines" if len(lines) > 1 else ""
        return None, f"not a Python interpreter: asked for its versions, it printed " \
            f"{shown(lines[0])}{more}"
    return {"python": found["python"], "ray": found.get("ray")}, ""


def _run(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, str, str]:
    """(exit status, stdout, stderr, why it was stopped), at most MAX_OUTPUT bytes of each."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    pipes = (proc.stdout, proc.stderr)
    bufs = {f.fileno(): bytearray() for f in pipes}
    deadline, why = time.monotonic() + timeout, ""
    try:
        with selectors.DefaultSelector() as sel:
            for f in pipes:
                sel.register(f, selectors.EVENT_READ)
            while sel.get_map() and not why:
                left = deadline - time.monotonic()
                if left <= 0:
                    why = f"did not answer within {timeout:g} s (a program that waits)"
                for key, _ in sel.select(max(left, 0)) if not why else []:
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                    bufs[key.fd] += chunk
                    if len(bufs[key.fd]) > MAX_OUTPUT:
                        why = f"printed more than {MAX_OUTPUT // 1024} KiB, not one line " \
                            "of versions"
        if not why:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                why = f"did not exit within {timeout:g} s"
    finally:
        if proc.poll() is None or why:
            _kill(proc)
        for f in pipes:
            f.close()
    out, err = (bytes(b[:MAX_OUTPUT]).decode(errors="replace") for b in bufs.values())
    return proc.returncode, out, err, why


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """The program and whatever it started (its own session): nothing is left running."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
