"""A store that cannot be written is found before Ray starts: `llem run` and `llem run
--dry-run` refuse it with one line, exit status 2 (a file or a device where the store or one
of its folders should be, an unknown URI scheme, an object store that does not answer, a
folder that cannot be written); the check leaves nothing behind. A store readers cannot
find is one line too, with where they looked."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

import llem.api
from llem.api import prepare, run_campaign
from llem.config.load import load_text
from llem.store.store import Store, StoreError
from tests.support.cli import run_cli
from tests.support.faults import noop_results

GRID = """
name: wr
models: [m]
backends: [noop]
grid: {batch_size: 1, max_new_tokens: 4}
dataset: {num_prompts: 4}
measurement: {warmup_requests: 0, thermal_gaps: false}
"""


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    path = tmp_path / "g.yaml"
    path.write_text(GRID)
    return path


def refused(r: subprocess.CompletedProcess[str], words: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: store ") and words in lines[0], lines
    assert "Traceback" not in r.stderr and "Ray" not in r.stderr


def _placed(tmp_path: Path, where: str) -> Path:
    """A store whose `where` (relative) is a file."""
    root = tmp_path / "s"
    (root / where).parent.mkdir(parents=True, exist_ok=True)
    (root / where).write_text("not a folder")
    return root


@pytest.mark.parametrize("where", ["runs", ".staging", "sessions", "requests/campaign=wr",
                                   "runs/campaign=wr"])
def test_a_file_where_a_folder_should_be(grid: Path, tmp_path: Path, where: str) -> None:
    root = _placed(tmp_path, where)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    r = run_cli("run", str(grid), "--store", str(root), "--dry-run")
    refused(r, f"{where} is a file where llem writes a folder")
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


@pytest.mark.parametrize(("store", "words"), [
    ("README.md", "is a file, not a folder"),
    ("/dev/null", "is a device, not a folder"),
    ("README.md/sub", "cannot be created: "),
    ("nosuchfs://bucket/x", "cannot open store 'nosuchfs://bucket/x'"),
])
def test_not_a_folder_nor_a_known_uri(grid: Path, store: str, words: str) -> None:
    r = run_cli("run", str(grid), "--store", store, "--dry-run")
    if store.startswith("nosuchfs"):
        assert r.returncode == 2 and words in r.stderr and len(r.stderr.splitlines()) == 1
    else:
        refused(r, words)


def test_a_real_run_is_refused_before_ray_starts(grid: Path) -> None:
    """Before: `--store README.md` passed the dry run and died after the first job with an
    internal NotADirectoryError."""
    t0 = time.monotonic()
    r = run_cli("run", str(grid), "--store", "README.md", "--quiet")
    refused(r, "is a file, not a folder")
    assert time.monotonic() - t0 < 60


def test_an_object_store_that_does_not_answer(grid: Path) -> None:
    uri = "s3://bucket/llem?endpoint_override=127.0.0.1:9&scheme=http"
    r = run_cli("run", str(grid), "--store", uri, "--dry-run")
    refused(r, "cannot be reached")


def _chattr(path: Path, flag: str) -> bool:
    r = subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False)
    return r.returncode == 0


@pytest.mark.parametrize("inner", [False, True], ids=["store", "campaign folder"])
def test_immutable_folder(grid: Path, tmp_path: Path, inner: bool) -> None:
    """chattr +i holds for root too (a chmod does not: see the next test)."""
    root = tmp_path / "s"
    target = root / "runs" / "campaign=wr" if inner else root
    target.mkdir(parents=True)
    if not _chattr(target, "+i"):
        pytest.skip("chattr +i is not allowed here")
    try:
        r = run_cli("run", str(grid), "--store", str(root), "--dry-run")
        refused(r, "is not writable: Operation not permitted")
    finally:
        _chattr(target, "-i")
    assert not (root / ".staging").exists() or inner


def test_read_only_folder(grid: Path, tmp_path: Path) -> None:
    """A folder without write permission; skipped where the tests run as root, which
    permissions do not stop (then writes would succeed too, and the check agrees)."""
    root = tmp_path / "s"
    root.mkdir()
    root.chmod(0o555)
    try:
        if os.access(root, os.W_OK):
            pytest.skip("running as root: permissions do not stop writes")
        r = run_cli("run", str(grid), "--store", str(root), "--dry-run")
        refused(r, "is not writable: Permission denied")
    finally:
        root.chmod(0o755)


def test_the_check_leaves_nothing_behind(grid: Path, tmp_path: Path) -> None:
    root = tmp_path / "new" / "store"
    r = run_cli("run", str(grid), "--store", str(root), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "new").exists()
    Store(tmp_path / "s").write_result(noop_results()[0])
    before = sorted((tmp_path / "s").rglob("*"))
    Store(tmp_path / "s").check_writable("st")
    assert sorted((tmp_path / "s").rglob("*")) == before


def test_library_refuses_before_ray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_ray(*a: object, **k: object) -> str:
        raise AssertionError("Ray was started")

    monkeypatch.setattr(llem.api, "connect", no_ray)
    loaded = load_text(GRID)
    with pytest.raises(StoreError, match="is a device"):
        prepare(loaded, store="/dev/null")
    with pytest.raises(StoreError, match="runs is a file"):
        run_campaign(loaded, store=_placed(tmp_path, "runs"))


@pytest.mark.parametrize("command", [["results"], ["query", "SELECT 1"], ["export", "wr"],
                                     ["compare", "wr"], ["doctor"]])
def test_readers_say_no_store_is_there(tmp_path: Path, command: list[str]) -> None:
    """A path that is no store (a file, nothing, an empty folder, the default ./results of
    a folder without a grid) is one line naming where they looked, exit status 2: not an
    empty table."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    for store in ("notes.txt", "nothing", "empty", None):
        args = [*command]
        if store is not None:
            args = [*args, store] if command == ["doctor"] else [*args, "--store", store]
        elif command == ["doctor"]:
            continue  # `llem doctor` alone checks the machine
        r = run_cli(*args, cwd=tmp_path)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, (store, r.stderr)
        where = tmp_path / (store or "results")
        assert lines[0].startswith(f"error: no store at {where}"), lines
        if store is None:
            assert "(the default ./results: no grid file in" in lines[0]
