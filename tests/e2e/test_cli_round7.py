"""Outputs named for what they hold, and stores named as the command takes them.

`export -o democopy.yaml` replaced a grid file with CSV, `report -o x.yaml` with HTML: only
suffixes of another known format were refused. Now -o ends in its format's own suffix, and
anything else (an existing file above all) is refused in one line, the file left as it is.
`compact FILE` said "pass --store", an option compact does not have.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.cli import assert_one_error_line, run_cli
from tests.support.faults import noop_store

GRID = "name: demo\nmodels: [llem:tiny]\nbackends: [transformers]\n"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store holding campaign st (4 noop measurements), as `llem run` writes one."""
    return noop_store(tmp_path / "s")


@pytest.mark.parametrize(("command", "fmt", "suffixes"), [
    ("export", "csv", ".csv"), ("report", "html", ".html or .htm")])
@pytest.mark.parametrize("name", ["democopy.yaml", "notes.txt", "results"])
def test_a_file_of_another_kind_is_never_replaced(store: Path, tmp_path: Path, command: str,
                                                  fmt: str, suffixes: str, name: str) -> None:
    target = tmp_path / name
    target.write_text(GRID)
    before = sorted(os.listdir(tmp_path))
    r = run_cli(command, "st", "-o", str(target), "--store", str(store), timeout=120)
    assert_one_error_line(r, f"-o {target}: this writes {fmt}, to a file named {suffixes} "
                          f"(e.g. {target.parent / (target.stem + '.' + fmt)}); the file "
                          "there is left as it is")
    assert target.read_text() == GRID and sorted(os.listdir(tmp_path)) == before


def test_a_new_file_wears_its_formats_name_and_an_earlier_one_is_replaced(
        store: Path, tmp_path: Path) -> None:
    """A new -o without its format's suffix is refused too (nothing is made); one with it is
    written, and written again over the previous export."""
    r = run_cli("export", "st", "-o", str(tmp_path / "out.yaml"), "--store", str(store))
    assert_one_error_line(r, "this writes csv, to a file named .csv (e.g. ")
    r = run_cli("export", "st", "--format", "parquet", "-o", str(tmp_path / "runs"),
                "--store", str(store))
    assert_one_error_line(r, f"this writes parquet, to a file named .parquet (e.g. "
                          f"{tmp_path / 'runs.parquet'})")
    assert sorted(os.listdir(tmp_path)) == ["s"]
    out = tmp_path / "runs.ndjson"
    for _ in range(2):
        ok = run_cli("export", "st", "-o", str(out), "--store", str(store))
        assert ok.returncode == 0, ok.stderr
        assert len(out.read_text().splitlines()) == 4 and out.read_text().startswith("{")


@pytest.mark.parametrize("command", ["compact", "doctor"])
def test_a_file_given_as_store_names_the_argument(tmp_path: Path, command: str) -> None:
    """compact and doctor take STORE as an argument: the fix says so, not --store."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    r = run_cli(command, str(grid))
    assert_one_error_line(r, f"no store at {grid}: a file, not a store's folder; give the "
                          "folder (or URI) `llem run` wrote to as STORE")
    assert "--store" not in r.stderr and grid.read_text() == GRID
    assert sorted(os.listdir(tmp_path)) == ["grid.yaml"]
    r = run_cli("export", "st", "--store", str(grid))  # which does take --store
    assert_one_error_line(r, "a file, not a store's folder; pass --store with the folder")


@pytest.mark.parametrize("args", [[], ["env"]])
def test_a_command_without_its_subcommand_prints_its_help(args: list[str]) -> None:
    """`llem` and `llem env` alone printed their help as one `error:` line of literal \\n."""
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"Usage: llem {' '.join(args)}".rstrip() + " [OPTIONS] COMMAND")
    assert "\\n" not in r.stdout and r.stdout.count("\n") > 5 and not r.stderr
