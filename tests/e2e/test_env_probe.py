"""A grid's `environments.<backend>.python` naming a program that is not a Python
interpreter: whatever it prints (nothing, not JSON, JSON of another shape, megabytes, only
stderr), or when it is a folder, not executable, or never answers, the run is refused in one
line naming the grid's line of `python:` and the fix, before Ray starts; `llem env list`
shows it as a broken row with the same reason; a dry run notes it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from llem.envs.environments import _clean_env
from llem.envs.probe import ask
from tests.support.cli import assert_one_error_line, run_cli

TOKEN = "hf_" + "Q" * 30  # token-shaped: never shown in a message
SCRIPTS = {  # name -> (script body, what the message says it printed)
    "empty": ("true", "it printed nothing"),
    "not_json": ("echo 'Python 3.11 ready'", "it printed 'Python 3.11 ready'"),
    "no_python_key": ("echo '{\"ray\": 1}'", "it printed '{\"ray\": 1}'"),
    "null": ("echo null", "it printed 'null'"),
    "a_list": ("echo '[1, 2]'", "it printed '[1, 2]'"),
    "python_a_number": ("echo '{\"python\": 3.11, \"ray\": null}'", "it printed '{\"python\""),
    "ray_a_number": ("echo '{\"python\": \"3.11\", \"ray\": 2}'", "it printed '{\"python\""),
    "stderr_only": ("echo 'garbage here' >&2", "printed nothing (on stderr: 'garbage here')"),
    "huge": ("exec yes", "printed more than 64 KiB"),
    "huge_stderr": ("yes >&2", "printed more than 64 KiB"),
    "a_secret": (f"echo 'token {TOKEN}'", "it printed 'token ***"),
    "fails": ("echo 'boom' >&2; exit 3", "fails (exit status 3): 'boom'"),
}


def _grid(tmp_path: Path, python: str) -> Path:
    grid = tmp_path / "grid.yaml"
    grid.write_text("name: t\nmodels: [llem:tiny]\nbackends: [transformers]\n"
                    f"environments:\n  transformers:\n    kind: venv\n    python: {python}\n")
    return grid


def _script(tmp_path: Path, body: str, mode: int = 0o755) -> Path:
    path = tmp_path / "py"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_program_that_does_not_answer_as_python_is_one_line(tmp_path: Path,
                                                              name: str) -> None:
    body, said = SCRIPTS[name]
    grid = _grid(tmp_path, str(_script(tmp_path, body)))
    store = tmp_path / "store"
    r = run_cli("run", str(grid), "--store", str(store), timeout=60)
    assert_one_error_line(r, "grid.yaml:7: 'environments.transformers.python'", unseen=TOKEN)
    assert said in r.stderr, r.stderr
    assert "point environments.transformers.python at the Python interpreter" in r.stderr
    assert not store.exists()


@pytest.mark.parametrize(("python", "said"), [
    ("/bin/echo", "it printed '-c import importlib.metadata"),
    ("/bin/true", "it printed nothing"),
])
def test_system_programs_as_python(tmp_path: Path, python: str, said: str) -> None:
    """The tester's cases: `run` refuses, `env list` shows a broken row (exit 0, no
    traceback), a dry run notes it, each naming the line of `python:` and the fix."""
    grid = _grid(tmp_path, python)
    r = run_cli("run", str(grid), "--store", str(tmp_path / "store"), timeout=60)
    assert_one_error_line(r, said)
    listed = run_cli("env", "list", str(grid), "--json", timeout=60)
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr[-2000:]
    (row,) = map(json.loads, listed.stdout.splitlines())
    assert row["state"] == "broken" and row["detail"].startswith(f"{grid}:7: "), row
    assert said in row["detail"] and "point environments.transformers.python" in row["detail"]
    table = run_cli("env", "list", str(grid), timeout=60)
    assert table.returncode == 0 and "broken" in table.stdout, table.stderr[-2000:]
    dry = run_cli("run", str(grid), "--dry-run", "--json", timeout=60)
    assert dry.returncode == 0 and "Traceback" not in dry.stderr, dry.stderr[-2000:]
    (note,) = [n for n in json.loads(dry.stdout)["not_checked"] if "transformers" in n]
    assert f"{grid}:7:" in note and said in note


@pytest.mark.parametrize(("kind", "said"), [
    ("folder", "a folder, not a Python interpreter"),
    ("not_executable", "not executable"),
])
def test_a_folder_or_a_file_that_cannot_run(tmp_path: Path, kind: str, said: str) -> None:
    if kind == "folder":
        python = tmp_path / "venv"
        python.mkdir()
    else:
        python = _script(tmp_path, "echo hi", mode=0o644)
    r = run_cli("run", str(_grid(tmp_path, str(python))), "--store", str(tmp_path / "s"),
                timeout=60)
    assert_one_error_line(r, said)
    assert "grid.yaml:7:" in r.stderr


def test_a_program_that_never_answers_is_stopped_with_its_children(tmp_path: Path) -> None:
    """The probe's time limit (60 s in a run; 1 s here) stops it and whatever it started:
    a child holding the output pipe open does not keep the probe waiting."""
    pidfile = tmp_path / "child.pid"
    script = _script(tmp_path, f"sleep 300 &\necho $! > {pidfile}\nwait")
    t0 = time.monotonic()
    found, why = ask(["bash", "-c", f"exec {script} -c x"], _clean_env(), timeout=1)
    assert found is None and why.startswith("did not answer within 1 s"), why
    assert time.monotonic() - t0 < 10
    child = int(pidfile.read_text())
    time.sleep(0.2)
    status = Path(f"/proc/{child}/status")
    assert not status.exists() or "\tZ" in status.read_text()  # gone, or dead unreaped
