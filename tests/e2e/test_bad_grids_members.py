"""More members of issue 18's families through the CLI as a user runs it (one subprocess
each, no Ray): one `error: FILE:LINE: ...` line, exit 2, nothing written in the store or
the working folder, no credential shown; a reader that closes the pipe early gets no
traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.bad_grids import assert_one_line_error

HEAD = "name: t\nmodels: [llem:tiny]\nbackends: [noop]\n"
SECRET = "ghp_PlantedTok0123456789abcdefghijABCDEFGHIJ"


def _llem() -> list[str]:
    script = Path(sys.executable).with_name("llem")
    return [str(script)] if script.exists() else [sys.executable, "-m", "llem"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}


@pytest.mark.parametrize(("body", "want"), [
    # a credential of another shape, and a password in a URL
    (f"grid:\n  generate.note: {SECRET}\n", r":5: 'grid\.generate\.note': looks like a "
                                            r"credential"),
    ("store: 's3://KEY:PlantedTokSecret@bucket/x'\n", r":4: 'store': looks like a credential"),
    # a YAML number that is not what it looks like; a key that is not text
    ("grid:\n  batch_size: 010\n", r":5: 'grid\.batch_size': 010 is an octal number"),
    ("noop:\n  yes: 1\n", r":5: 'noop': a key must be text or a whole number"),
    # a rule whose value has the wrong type (true == 1 would drop batch_size 1)
    ("grid:\n  batch_size: [1, 2]\nexclude:\n  - {batch_size: true}\n",
     r":7: 'exclude\.0\.batch_size': must be a whole number"),
    # two groups crossed that set one parameter
    ("grid:\n  g1: [{batch_size: 1}]\n  g2: [{batch_size: 2}]\n",
     r":6: 'grid\.g2': 'batch_size' is also set by 'g1' on line 5"),
    # a prompt file that is the driver's environment
    ("dataset: {source: file, path: /proc/self/environ}\n",
     r":4: 'dataset\.path': prompt file /proc/\S+/environ is a kernel or device file"),
    # a pip option in place of a requirement
    ("environments:\n  noop: {kind: pip, packages: ['--index-url=http://example.invalid/']}\n",
     r":5: 'environments\.noop\.packages': .*not a pip option"),
])
def test_cli_refuses_more_members(body: str, want: str, tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(HEAD + body)
    r = subprocess.run([*_llem(), "run", str(grid), "--store", str(tmp_path / "store")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60, env=_env(),
                       check=False)
    assert_one_line_error(r, grid, want)
    assert "PlantedTok" not in r.stderr + r.stdout
    assert sorted(os.listdir(tmp_path)) == ["grid.yaml"]  # no store, nothing in the folder


def test_cli_store_under_no_such_user_is_one_line(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(HEAD)
    r = subprocess.run([*_llem(), "run", str(grid), "--dry-run", "--store",
                        "~nosuchuser-llem/x"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60, env=_env(), check=False)
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == "error: cannot open store '~nosuchuser-llem/x': Could not " \
                               "determine home directory.", r.stderr


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    """`llem run GRID --dry-run | head -1`: the pipe closes while llem still writes."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(HEAD + "grid:\n  batch_size: [" + ", ".join(map(str, range(1, 400))) +
                    "]\n")
    p = subprocess.Popen([*_llem(), "run", str(grid), "--dry-run", "--store",
                          str(tmp_path / "store")], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=_env())
    assert p.stdout is not None and p.stderr is not None
    assert p.stdout.readline()  # the first line, then the reader goes away
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 1, err
    assert "Traceback" not in err and "internal error" not in err and "Broken" not in err, err


@pytest.mark.parametrize(("address", "want"), [
    ("bad address", "--address 'bad address' is not a Ray address"),  # ray.init: ValueError
    ("http://127.0.0.1:8265", "is not a Ray address"),  # the dashboard's, not the GCS port
    ("127.0.0.1:1", "--address 127.0.0.1:1: nothing answers at 127.0.0.1:1"),  # minutes
])
@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_cli_refuses_an_address_ray_cannot_use(address: str, want: str, dry: bool,
                                               tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(HEAD)
    r = subprocess.run([*_llem(), "run", str(grid), "--address", address,
                        *(["--dry-run"] if dry else [])], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60, env=_env(), check=False)
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and want in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["grid.yaml"]
