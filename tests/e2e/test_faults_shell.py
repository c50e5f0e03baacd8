"""No shell anywhere in llem: every subprocess is an argument list (issue: hostile input).

A grid file's values (model paths, names, engine args) reach subprocesses (env builds,
backend probes); with a shell, a quote in one would run a command. The ruff rules S602/S604/
S605/S609 in pyproject.toml catch this at lint time; this test catches it without ruff.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.paths import ROOT

SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
               ("subprocess", "getstatusoutput"), ("os", "execl"), ("os", "spawnl")}


def _offences(tree: ast.AST, name: str) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant)
                                          and kw.value.value is False):
                out.append(f"{name}:{node.lineno}: shell={ast.unparse(kw.value)}")
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and \
                (f.value.id, f.attr) in SHELL_CALLS:
            out.append(f"{name}:{node.lineno}: {f.value.id}.{f.attr}")
    return out


def test_no_shell_in_the_package() -> None:
    files = sorted((ROOT / "llem").rglob("*.py"))
    assert len(files) > 20
    offences = [o for p in files for o in _offences(ast.parse(p.read_text()), str(p))]
    assert offences == []


def test_the_checker_finds_a_shell() -> None:
    bad = "import os, subprocess\nsubprocess.run(cmd, shell=True)\nos.system('ls')\n" \
          "subprocess.Popen(x, shell=flag)\nsubprocess.run(['ls'], shell=False)\n"
    assert [o.split(": ", 1)[1] for o in _offences(ast.parse(bad), "x")] == \
        ["shell=True", "os.system", "shell=flag"]


def test_ruff_bans_shell() -> None:
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert {"S602", "S604", "S605", "S609"} <= set(lint["select"])
    ignored = set(lint.get("per-file-ignores", {}).get("llem/**", [])) | set(lint["ignore"])
    assert not ignored & {"S602", "S604", "S605", "S609"}


RAY_GRID = """
name: shellpath
models: [m]
backends: [noop]
grid: {{batch_size: 1, max_new_tokens: 2}}
dataset: {{num_prompts: 2}}
measurement: {{warmup_requests: 0, thermal_gaps: false}}
environments: {{noop: {{kind: venv, python: {python}}}}}
"""


def _refused(tmp_path: Path, python: str) -> str:
    import json
    import time

    from tests.support.cli import run_cli

    grid = tmp_path / "g.yaml"
    grid.write_text(RAY_GRID.format(python=json.dumps(python)))
    t0 = time.perf_counter()
    proc = run_cli("run", str(grid), "--store", str(tmp_path / "store"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "Ray" not in proc.stdout and time.perf_counter() - t0 < 20  # before Ray starts
    assert not (tmp_path / "store").exists()
    return lines[0]


def test_a_venv_path_with_a_command_is_refused_unrun(tmp_path: Path) -> None:
    """Ray starts a venv worker through an unquoted `bash -c`: `$(...)` in the path ran."""
    pwned = tmp_path / "pwned"
    line = _refused(tmp_path, f"{tmp_path}/v$(touch {pwned})/bin/python")
    assert line.startswith("error: environments.noop.python: the interpreter path") and \
        "'$'" in line and "unquoted `bash -c`" in line, line
    assert not pwned.exists()


def test_a_venv_path_with_a_space_is_refused(tmp_path: Path) -> None:
    """A real interpreter behind a path with a space passed the probe, then the worker never
    started (600 s later: a start timeout with the wrong hint)."""
    (tmp_path / "with space").mkdir()
    link = tmp_path / "with space" / "python"
    link.symlink_to(sys.executable)
    line = _refused(tmp_path, str(link))
    assert "has space" in line, line


def test_the_probe_runs_what_ray_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """probe() hands bash the very string Ray 2.60's exec_worker builds for py_executable."""
    import os

    from ray._private.runtime_env.context import RuntimeEnvContext
    from ray.core.generated.common_pb2 import Language

    from llem.envs.environments import probe, ray_command, venv_status

    seen: list[list[str]] = []
    monkeypatch.setattr(os, "execvp", lambda file, args: seen.append(list(args)))
    args = ["-c", "print('a b')", "--x=$(y)"]
    RuntimeEnvContext(py_executable=sys.executable).exec_worker(args, Language.PYTHON)
    assert seen == [["bash", "-c", ray_command(sys.executable, *args)]]
    monkeypatch.undo()
    found, why = probe(Path(sys.executable))
    assert found is not None and found["ray"], why
    assert venv_status("noop", python=sys.executable).state == "ready"
    bad, why = probe(tmp_path / "a b" / "python")
    assert bad is None and "has space" in why
