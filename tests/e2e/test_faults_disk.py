"""Disk full while writing: one clear error, no partial file, earlier results intact.

Where this machine lets the test mount a tiny tmpfs, the disk really fills; the fault
injection (a filesystem whose writes fail with ENOSPC past a byte budget) runs everywhere.
"""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest

from llem.store.doctor import inspect
from llem.store.query import run_sql
from llem.store.store import Store, StoreError
from llem.store.writer import StoreWriter
from tests.support.cli import run_cli
from tests.support.faults import noop_results


class _FullStream:
    """An output stream that writes its real file until the budget is spent, then ENOSPC."""

    def __init__(self, real: Any, budget: list[int]) -> None:
        self.real, self.budget, self.closed = real, budget, False

    def write(self, data: bytes) -> int:
        if len(data) > self.budget[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.budget[0] -= len(data)
        return int(self.real.write(data))

    def flush(self) -> None:
        self.real.flush()

    def tell(self) -> int:
        return int(self.real.tell())

    def close(self) -> None:
        self.closed = True
        self.real.close()

    def __enter__(self) -> _FullStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FullDisk:
    """A LocalFileSystem whose output streams fail once `budget` bytes were written."""

    def __init__(self, budget: int) -> None:
        self.real, self.budget = pafs.LocalFileSystem(), [budget]

    def open_output_stream(self, path: str) -> _FullStream:
        return _FullStream(self.real.open_output_stream(path), self.budget)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_enospc_is_one_clear_error_and_leaves_nothing_partial(tmp_path: Path) -> None:
    results = noop_results(2)
    store = Store(tmp_path / "s")
    store.write_result(results[0])
    before = {t: store.files(t) for t in ("runs", "requests")}
    store.fs = FullDisk(budget=600)  # type: ignore[assignment]
    with pytest.raises(StoreError) as err:
        store.write_result(results[1])
    msg = str(err.value)
    assert "disk full (or over quota) writing requests/campaign=st/" in msg
    assert "run again to resume" in msg and "\n" not in msg
    store.fs = pafs.LocalFileSystem()
    assert {t: store.files(t) for t in ("runs", "requests")} == before
    assert list((tmp_path / "s" / ".staging").iterdir()) == []  # the temp file was removed
    assert run_sql(store, "SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 1}]
    assert inspect(store).findings == []


def test_the_driver_writer_thread_stops_at_the_first_error(tmp_path: Path) -> None:
    """The driver's background writer (llem.store.writer): a full disk is raised on the
    driver's loop as the same StoreError; the results after it are not written (they run
    again on resume) and are named, so the session's counts stay exact."""
    results = noop_results(2)
    store = Store(tmp_path / "s")
    store.write_result(results[0])
    store.fs = FullDisk(budget=600)  # type: ignore[assignment]
    writer = StoreWriter(store)
    for r in results[1:]:
        writer.put(r)
    writer.close()
    with pytest.raises(StoreError, match="disk full"):
        writer.check()
    with pytest.raises(StoreError):
        writer.put(results[0])
    assert [r.job_id for r in writer.lost()] == [r.run.job_id for r in results[1:]]
    store.fs = pafs.LocalFileSystem()
    assert run_sql(store, "SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 1}]


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 1 MiB tmpfs, or skip where mounting is not allowed."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()[:100]}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


def test_real_full_disk(tiny_disk: Path) -> None:
    store = Store(tiny_disk / "s")
    results = noop_results(2)
    (tiny_disk / "ballast").write_bytes(b"\0" * (1024 * 1024 - 200 * 1024))
    written = 0
    with pytest.raises(StoreError, match="disk full"):
        for i in range(10_000):
            r = results[i % len(results)]
            r.run.cycle = i
            for row in r.requests:
                row["cycle"] = i
            store.write_result(r)
            written += 1
    assert written > 0
    assert len(store.files("runs")) == written  # each stored job is whole; nothing partial
    # a job cut short by the full disk may leave its requests file without its runs row:
    # an orphan, which readers skip; nothing partial
    assert {f.kind for f in inspect(store).findings} <= {"staging", "orphan"}
    assert run_sql(store, "SELECT count(*) AS n FROM runs").to_pylist() == [{"n": written}]


@pytest.mark.slow
def test_llem_run_on_a_full_disk(tiny_disk: Path, llem_cache: Path, tmp_path: Path) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text("""
name: full
models: [m]
backends: [noop]
cycles: 200
grid: {batch_size: 1, max_new_tokens: 4}
dataset: {num_prompts: 64}
measurement: {warmup_requests: 0, thermal_gaps: false}
""")
    (tiny_disk / "ballast").write_bytes(b"\0" * (1024 * 1024 - 300 * 1024))
    r = run_cli("run", str(grid), "--store", str(tiny_disk / "s"), "--quiet", timeout=300)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert last.startswith("error: store ") and "disk full" in last, last
    store = Store(tiny_disk / "s")
    assert len(store.files("runs")) > 0
    # a job cut short by the full disk may leave its requests file without its runs row:
    # an orphan, which readers skip; nothing partial
    assert {f.kind for f in inspect(store).findings} <= {"staging", "orphan"}
