"""The README's path from a clean clone to `llem ...`, as written: after its set-up lines (make
builds .venv; the line after them activates it) `llem` is on PATH, and every usage line's
command exists. Read-only lines (query, results) run as written against an empty store; the
others with --help. The shell starts with a bare PATH, so nothing but the README puts llem
there."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

README = ROOT / "README.md"
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"
READ_ONLY = {"query", "results"}  # safe to run as written, against an empty store


def code_lines(section: str) -> list[str]:
    """The indented code lines of a README section ('## Set up'), as written."""
    body = README.read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    lines, fenced = [], False
    for ln in body.splitlines():
        if ln.startswith("```"):
            fenced = not fenced
        elif not fenced and ln.startswith("    ") and ln.strip():
            lines.append(ln.strip())
    return lines


def test_setup_lines_are_make_targets_then_the_activation() -> None:
    setup = [shlex.split(ln, comments=True) for ln in code_lines("Set up")]
    makes = [w for w in setup if w[0] == "make"]
    assert [w[1] for w in makes] == ["demo", "test"]
    assert setup[len(makes):] == [["source", ".venv/bin/activate"]]
    if shutil.which("make") is None:
        pytest.skip("no make here")
    # as a newcomer's shell runs it: not inside the `make test` that may be running this test
    env = {k: v for k, v in os.environ.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
    for words in makes:
        r = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, check=False, env=env)
        assert r.returncode == 0, r.stderr
    # make demo ends by saying how to get llem on PATH: the README's own line
    demo = subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False, env=env).stdout
    assert "source .venv/bin/activate" in demo.splitlines()[-1]


def test_usage_lines_run_after_the_documented_setup(tmp_path: Path) -> None:
    venv = ROOT / ".venv"
    if Path(sys.prefix).resolve() != venv.resolve():
        pytest.skip("these tests do not run in the checkout's .venv (the one make builds)")
    setup = [ln for ln in code_lines("Set up") if not ln.startswith("make ")]
    usage = [shlex.split(ln, comments=True) for ln in code_lines("Usage")
             if ln.startswith("llem ")]
    assert len(usage) >= 10
    store = tmp_path / "empty-store"
    (store / "runs").mkdir(parents=True)  # a store nothing was written to yet
    steps, helped = [], set()
    for words in usage:
        if words[1] in READ_ONLY:
            steps.append(shlex.join([*words, "--store", str(store)]))
            continue
        cmd = tuple(words[:3] if words[1] == "env" else words[:2])
        if cmd not in helped:
            helped.add(cmd)
            steps.append(shlex.join([*cmd, "--help"]) + " > /dev/null")
    script = "\n".join([
        "set -e", f"cd {shlex.quote(str(ROOT))}",
        "if command -v llem; then echo 'llem on PATH before the set-up'; exit 3; fi",
        *setup,
        f"test \"$(command -v llem)\" = {shlex.quote(str(venv / 'bin' / 'llem'))}",
        *steps])
    env = {"PATH": BARE_PATH, "HOME": os.environ.get("HOME", str(tmp_path)),
           "LANG": "C.UTF-8", "LLEM_CACHE": str(tmp_path / "cache")}
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=600,
                       env=env, check=False)
    assert r.returncode == 0, f"{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    assert "0 rows" in r.stdout  # the queries ran, over the empty store
