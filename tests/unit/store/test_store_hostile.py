"""Stores a user can hand llem that are not llem's doing: a file name that is not UTF-8 (or a
campaign folder so named), a root under a user that does not exist, an object store that
never answers. Each is read past or refused in one line, never a traceback or a hang."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

import llem.store.writable as writable
from llem.config.grid import iter_jobs
from llem.config.load import load_text
from llem.harness.runner import JobRunner
from llem.store.doctor import inspect
from llem.store.query import run_sql
from llem.store.run_row import Result
from llem.store.schema import StoreError
from llem.store.store import Store


def _one_result() -> Result:
    (job,) = iter_jobs(load_text("name: st\nmodels: [m]\nbackends: [noop]\n"
                                 "noop: {token_s: 0.0}\n"))
    runner = JobRunner("noop", {"model": "m", "dtype": "auto", "engine": {"token_s": 0.0},
                                "gpus": 0}, 0)
    return runner.run(job.payload(), ["a b"])


def test_names_that_are_not_utf8_are_never_llem_files(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_result(_one_result())
    runs = tmp_path / "runs" / "campaign=st"
    (name,) = os.listdir(runs)
    bad = os.fsdecode(b"\xff\xfe")  # the name's bytes, as Python writes them to a path
    shutil.copy(runs / name, runs / f"{bad}.parquet")
    (tmp_path / "runs" / f"campaign={bad}").mkdir()
    shutil.copy(runs / name, tmp_path / "runs" / f"campaign={bad}" / name)
    (runs / f"{name[:-8]}\nx.parquet").write_bytes(b"junk")  # a newline in a name
    assert run_sql(Store(tmp_path), "SELECT count(*) AS n FROM runs").to_pylist()[0]["n"] == 1
    assert Store(tmp_path).campaigns() == ["st"]
    report = inspect(Store(tmp_path))
    assert [f.path.rsplit("/", 1)[-1] for f in report.findings] == [f"{name[:-8]}\nx.parquet"]


def test_a_root_under_no_such_user_is_one_line() -> None:
    with pytest.raises(StoreError, match="cannot open store '~nosuchuser-llem/x'"):
        Store("~nosuchuser-llem/x")


def test_an_object_store_that_never_answers_is_refused_in_bounded_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # pyarrow's GCS client asks a metadata server that is not there, with retries (minutes
    # here); any error it might give sooner on another machine is a refusal too
    monkeypatch.setattr(writable, "REMOTE_TIMEOUT_S", 1.0)
    t0 = time.monotonic()
    with pytest.raises(StoreError, match="store gs://llem-no-such-bucket/x "):
        Store("gs://llem-no-such-bucket/x").check_writable("t")
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("rel", [".staging", "runs", "runs/campaign=st",
                                 "requests/campaign=st"])
def test_a_link_to_nothing_where_llem_makes_a_folder(rel: str, tmp_path: Path) -> None:
    Store(tmp_path).write_result(_one_result())  # a store with its folders
    target = tmp_path / rel
    shutil.rmtree(target)
    target.symlink_to(tmp_path / "gone")
    with pytest.raises(StoreError, match=f"{rel} is a link to .*gone, which does not exist"):
        Store(tmp_path).check_writable("st")
