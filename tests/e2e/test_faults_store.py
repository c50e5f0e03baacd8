"""Store integrity: stray, partial and foreign files never break a read; `llem doctor STORE`
reports and cleans them; another schema version is one clear line; nothing is written
outside the store root."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llem.cli.doctor_cmd import doctor_store
from llem.store.doctor import inspect
from llem.store.query import run_sql
from llem.store.schema import is_data_path
from llem.store.store import Store, StoreError
from tests.support.cli import run_cli
from tests.support.faults import noop_results


def _count(store: Store, table: str = "runs") -> int:
    return int(run_sql(store, f"SELECT count(*) AS n FROM {table}").to_pylist()[0]["n"])


def _plant_strays(root: Path) -> dict[str, str]:
    """One file of each kind readers must skip; returns {relative path: expected kind}."""
    camp = root / "runs" / "campaign=st"
    good = sorted(camp.glob("*.parquet"))[0]
    data = good.read_bytes()
    (root / ".staging" / "dead.tmp").write_bytes(data[: len(data) // 2])
    (camp / "0123456789abcdef-c7.parquet").write_bytes(data[: len(data) // 2])  # cut short
    (camp / ".hidden.parquet").write_bytes(data)
    (camp / "notes.txt").write_text("my notes")
    pq.write_table(pa.table({"x": [1, 2]}), camp / "data.parquet")
    (root / "README").write_text("hand-written")
    req = sorted((root / "requests" / "campaign=st").glob("*.parquet"))[0]
    shutil.copy(req, req.with_name("0123456789abcdee-c0.parquet"))  # no runs file: orphan
    return {"requests/campaign=st/0123456789abcdee-c0.parquet": "orphan",
            ".staging/dead.tmp": "staging", "runs/campaign=st/0123456789abcdef-c7.parquet":
            "partial", "runs/campaign=st/.hidden.parquet": "foreign",
            "runs/campaign=st/notes.txt": "foreign",
            "runs/campaign=st/data.parquet": "foreign", "README": "foreign"}


def test_store_with_strays_reads_and_doctor_cleans(tmp_path: Path) -> None:
    store = Store(tmp_path)
    results = noop_results()
    for r in results:
        store.write_result(r)
    planted = _plant_strays(tmp_path)
    # every reader skips them: DuckDB views, pyarrow reads, resume's done set
    assert _count(store) == 2 and _count(store, "requests") == 4
    assert len(store.done("st")) == 2
    assert store.read("runs").num_rows == 2

    report = inspect(store, now=1e12)  # far future: no staging file is "being written"
    assert {f.path: f.kind for f in report.findings} == planted
    assert {k: report.data_files[k] for k in ("runs", "requests", "samples")} == \
        {"runs": 2, "requests": 2, "samples": 0}
    assert all(f.action == "none" for f in report.findings)

    cleaned = inspect(store, clean=True, now=1e12)
    actions = {f.path: f.action for f in cleaned.findings}
    assert actions[".staging/dead.tmp"] == "removed"
    assert actions["runs/campaign=st/0123456789abcdef-c7.parquet"] == "removed"
    assert actions["README"] == "quarantined"
    assert actions["requests/campaign=st/0123456789abcdee-c0.parquet"] == "removed"
    assert (tmp_path / ".quarantine" / "runs" / "campaign=st" / "notes.txt").read_text() == \
        "my notes"
    assert not cleaned.problems
    assert inspect(store, now=1e12).findings == []
    assert _count(store) == 2 and _count(store, "requests") == 4


def test_young_staging_file_is_kept(tmp_path: Path) -> None:
    """A temp file seconds old may be a campaign writing right now: never pulled from under it."""
    store = Store(tmp_path)
    store.write_result(noop_results()[0])
    (tmp_path / ".staging" / "live.tmp").write_bytes(b"PAR1 writing")
    report = inspect(store, clean=True)
    assert [(f.kind, f.action) for f in report.findings] == [("staging", "kept")]
    assert (tmp_path / ".staging" / "live.tmp").exists()


def test_doctor_store_output_and_exit_status(tmp_path: Path, capsys) -> None:
    store = Store(tmp_path)
    store.write_result(noop_results()[0])
    assert doctor_store(str(tmp_path)) == 0
    assert "store is clean" in capsys.readouterr().out
    (tmp_path / "runs" / "campaign=st" / "junk.csv").write_text("a,b")
    # named like llem's data but not llem's: readers trust names, the doctor checks columns
    pq.write_table(pa.table({"x": [1]}), tmp_path / "requests" / "campaign=st" /
                   "fedcba9876543210-c0.parquet")
    assert doctor_store(str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert "junk.csv" in out and "foreign" in out and "--clean" in out
    assert "without llem's columns" in out
    assert doctor_store(str(tmp_path), clean=True) == 0
    assert doctor_store(str(tmp_path), as_json=True) == 0
    assert '"runs": 1' in capsys.readouterr().out


def _rewrite_version(path: Path, version: int) -> None:
    t = pq.read_table(path)
    i = t.schema.get_field_index("schema_version")
    t = t.set_column(i, "schema_version", pa.array([version] * t.num_rows, pa.int16()))
    pq.write_table(t, path)


@pytest.mark.parametrize(("version", "words"), [(99, "newer than this llem's 1: upgrade llem"),
                                                (0, "older than this llem's 1: re-run")])
def test_other_schema_version_is_one_clear_line(tmp_path: Path, version: int,
                                                words: str) -> None:
    store = Store(tmp_path / "s")
    for r in noop_results():
        store.write_result(r)
    _rewrite_version(sorted((tmp_path / "s" / "runs").rglob("*.parquet"))[0], version)
    with pytest.raises(StoreError, match=words):
        run_sql(store, "SELECT count(*) FROM runs")
    with pytest.raises(StoreError, match=words):
        store.done("st")  # resume refuses too, before anything is written
    r = run_cli("query", "SELECT count(*) FROM runs", "--store", str(tmp_path / "s"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and words in r.stderr
    kinds = [f.kind for f in inspect(store).findings]
    assert kinds == ["version"]
    assert inspect(store, clean=True).findings[0].action == "kept"  # data is never deleted


@pytest.mark.parametrize(("campaign", "job_id"), [
    ("../escape", "0123456789abcdef"), ("a/b", "0123456789abcdef"), ("ok", "../../etc"),
    ("ok", "a\nb"), ("..", "0123456789abcdef"), ("ok\x00", "0123456789abcdef")])
def test_store_never_writes_outside_its_root(tmp_path: Path, campaign: str,
                                             job_id: str) -> None:
    store = Store(tmp_path / "s")
    r = noop_results()[0]
    r.run = dataclasses.replace(r.run, campaign=campaign, job_id=job_id)
    with pytest.raises(ValueError, match=r"must be|not a store data path"):
        store.write_result(r)
    outside = [p for p in tmp_path.rglob("*") if not str(p).startswith(str(tmp_path / "s"))]
    assert outside == []
    assert not list((tmp_path / "s").rglob("*.parquet"))


def test_data_path_names() -> None:
    assert is_data_path("runs/campaign=demo/0123456789abcdef-c0.parquet")
    assert is_data_path("sessions/campaign=demo/20261123T120000-0123abcd.parquet")
    for bad in ("runs/campaign=demo/x.parquet", "runs/campaign=../0123456789abcdef-c0.parquet",
                "other/campaign=demo/0123456789abcdef-c0.parquet",
                "runs/campaign=demo/.0123456789abcdef-c0.parquet",
                "runs/campaign=demo/0123456789abcdef-c0.parquet.tmp",
                "sessions/campaign=demo/20261123T1200-0123abcd.parquet"):
        assert not is_data_path(bad), bad


def test_copied_store_with_partial_file_reads(tmp_path: Path) -> None:
    """A store synced by a tool that writes in place: the half-copied file is skipped."""
    src = Store(tmp_path / "a")
    for r in noop_results(2):
        src.write_result(r)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    victim = sorted((tmp_path / "b" / "requests").rglob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    dst = Store(tmp_path / "b")
    # its job is left out whole (its runs row too): not done, so resume measures it again
    assert _count(dst) == 3 and _count(dst, "requests") == 6
    assert len(dst.done("st")) == 3
    assert [w.split(":")[0] for w in dst.warnings] == \
        [f"skipped {victim.relative_to(tmp_path / 'b')}"]
    assert sorted(f.kind for f in inspect(dst).findings) == ["incomplete", "partial"]


def test_llem_doctor_store_cli(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    store.write_result(noop_results()[0])
    (tmp_path / "s" / "runs" / "campaign=st" / "junk.csv").write_text("a,b")
    r = run_cli("doctor", str(tmp_path / "s"))
    assert r.returncode == 1 and "junk.csv" in r.stdout and "foreign" in r.stdout, r.stdout
    assert "1 file needs attention;" in r.stdout, r.stdout  # in the singular
    r = run_cli("doctor", str(tmp_path / "s"), "--clean")
    assert r.returncode == 0 and "quarantined" in r.stdout, r.stdout
    assert "store is clean (1 file fixed)" in r.stdout, r.stdout
    r = run_cli("doctor", str(tmp_path / "s"))
    assert r.returncode == 0 and "store is clean" in r.stdout, r.stdout
    r = run_cli("doctor", "--clean")
    assert r.returncode == 2 and "needs a STORE" in r.stderr
