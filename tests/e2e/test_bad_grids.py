"""Every mistake in a grid file: one line on stderr per mistake (`error: FILE:LINE: ...`),
exit code 2, nothing started or written.

EXPECTED (tests.support.bad_grids) maps each file of tests/support/data/bad_grids/ to the
regex its message must match (searched in the line after 'error: <file>'), or to one regex per
line where the file holds several independent mistakes; ':N:' pins the line the message must
name. The CLI runs as a user runs it: a subprocess, argument list, no shell, RAY_ADDRESS unset.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.bad_grids import BAD, CLUSTER_CASES, EXPECTED, FAST_CASES, check_lines, patterns


def _llem() -> list[str]:
    script = Path(sys.executable).with_name("llem")
    return [str(script)] if script.exists() else [sys.executable, "-m", "llem"]


def run_llem(grid: Path, tmp: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([*_llem(), "run", str(grid), "--store", str(tmp / "store")],
                          cwd=tmp, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)


def assert_error_lines(r: subprocess.CompletedProcess[str], grid: Path,
                       expected: str | list[str], *, located: bool = True) -> list[str]:
    """Exit 2, no traceback, and one `error: ` line per expected regex (a file with one
    mistake: exactly one line)."""
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "internal error" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    lines = r.stderr.rstrip("\n").split("\n")
    assert all(line.startswith("error: ") for line in lines), r.stderr
    lines = [line[len("error: "):] for line in lines]
    check_lines(lines, grid, [expected] if isinstance(expected, str) else expected, located)
    return lines


def assert_one_line_error(r: subprocess.CompletedProcess[str], grid: Path, pattern: str,
                          *, located: bool = True) -> str:
    return "error: " + assert_error_lines(r, grid, pattern, located=located)[0]


def test_manifest_covers_the_corpus() -> None:
    files = {p.name for p in BAD.glob("*.yaml")}
    assert files == set(EXPECTED), (files ^ set(EXPECTED))
    assert len(files) >= 32


def _cli_params() -> list[object]:
    out: list[object] = []
    for name in sorted(EXPECTED):
        marks = []
        if name in CLUSTER_CASES:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.mark.parametrize("name", _cli_params())
def test_cli_rejects_bad_grid(name: str, tmp_path: Path) -> None:
    grid = BAD / name
    cluster = name in CLUSTER_CASES
    t0 = time.monotonic()
    r = run_llem(grid, tmp_path, timeout=180 if cluster else 30)
    elapsed = time.monotonic() - t0
    assert not (tmp_path / "store").exists(), "a bad grid wrote to the store"
    if cluster:
        # llem run prints its plan line (and progress) to stderr before the driver finds this;
        # the error itself is the last line, exit 2, no traceback, nothing stored.
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
        assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
        last = r.stderr.rstrip("\n").split("\n")[-1]
        assert last.startswith("error: ") and re.search(EXPECTED[name], last), last
        return
    assert_error_lines(r, grid, patterns(name))
    if name in FAST_CASES:
        assert elapsed < 10, f"{name} took {elapsed:.1f}s"


def test_cli_rejects_oversized_file_before_parsing(tmp_path: Path) -> None:
    grid = tmp_path / "oversized.yaml"
    grid.write_text("name: t\nmodels: [llem:tiny]\n" + "# padding\n" * 110_000)
    assert grid.stat().st_size > 1 << 20
    r = run_llem(grid, tmp_path)
    assert_one_line_error(r, grid, r": file is over the 1048576-byte limit")
    assert not (tmp_path / "store").exists()


def test_cli_missing_grid_file(tmp_path: Path) -> None:
    grid = tmp_path / "nope.yaml"
    r = run_llem(grid, tmp_path)
    assert_one_line_error(r, grid, r": file not found")


def test_cli_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    os.mkfifo(grid)  # opening it for reading would wait for a writer forever
    r = run_llem(grid, tmp_path, timeout=30)
    assert_one_line_error(r, grid, r": is not a regular file \(a pipe, device or socket\)")
    assert not (tmp_path / "store").exists()


def test_cli_refuses_a_big_string_aliased_many_times_quickly(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    aliases = ", ".join(["*s"] * 200)
    grid.write_text(f"name: t\nmodels: [llem:tiny]\nbackends: [noop]\nnoop:\n"
                    f"  a: &s {'x' * 400_000}\n  b: [{aliases}]\n")
    t0 = time.monotonic()
    r = run_llem(grid, tmp_path, timeout=30)
    assert_one_line_error(r, grid, r":5: more than \d+ characters of text after expanding")
    assert time.monotonic() - t0 < 10


def test_cli_several_mistakes_one_line_each(tmp_path: Path) -> None:
    grid = BAD / "many_independent_mistakes.yaml"
    r = run_llem(grid, tmp_path)
    lines = assert_error_lines(r, grid, patterns("many_independent_mistakes.yaml"))
    assert len(lines) == 5


def test_cli_a_value_listed_twice_runs_once(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text("name: t\nmodels: [m, m]\nbackends: [noop, noop]\n"
                    "grid: {batch_size: [1, 1]}\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    r = subprocess.run([*_llem(), "run", str(grid), "--dry-run", "--json"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60, env=env, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    plan = json.loads(r.stdout)
    assert (plan["points"], plan["jobs"]) == (1, 1), plan
