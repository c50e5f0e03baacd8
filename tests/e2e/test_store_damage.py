"""Damaged and foreign files in a store: every reader (the DuckDB views behind query,
results and export, Store.read, resume's done set) skips the file with one warning naming
it and `llem doctor`; the measurement it belongs to is left out whole, so resume runs its
job again; `llem doctor STORE` reads every file whole and finds it, --clean moves it aside
with the other files of its measurement. Real Parquet files, the CLI as a subprocess."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import llem.store.checks
from llem.store.compact import compact
from llem.store.doctor import inspect
from llem.store.query import run_sql
from llem.store.store import Store
from tests.support.cli import run_cli
from tests.support.faults import noop_results, noop_store


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verdicts kept under this test's folder (the CLI subprocesses inherit it)."""
    monkeypatch.setenv("LLEM_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A store of 4 measurements (2 points x 2 cycles), each with 2 requests."""
    return noop_store(tmp_path / "s")


def files(root: Path, table: str) -> list[Path]:
    return sorted((root / table).rglob("*.parquet"))


def rel(root: Path, path: Path) -> str:
    return str(path.relative_to(root))


def value_byte(path: Path, column: str) -> int:
    """The offset of a byte of one of the column's values in row group 0: in its dictionary
    page (the values; its data page holds their indices), else at the end of its data page."""
    md = pq.read_metadata(path)
    rg = md.row_group(0)
    cc = next(rg.column(i) for i in range(rg.num_columns)
              if rg.column(i).path_in_schema == column)
    if cc.has_dictionary_page:
        return int(cc.data_page_offset) - 2  # a mantissa byte of the last double
    return int(cc.data_page_offset + cc.total_compressed_size) - 2


def damage(path: Path, where: str, column: str = "tokens_per_s") -> None:
    """Change bytes between the intact PAR1 markers, the size kept: in the footer, in the
    middle of the file, or one bit of a value in a column's data (the page's bytes)."""
    data = bytearray(path.read_bytes())
    size = len(data)
    if where == "footer":
        start = size - 8 - int.from_bytes(data[-8:-4], "little")
        data[start:start + 16] = b"\xff" * 16
    elif where == "middle":
        data[size // 2:size // 2 + 64] = bytes(64)
    else:
        data[value_byte(path, column)] ^= 0x01
    assert len(data) == size and data[:4] == data[-4:] == b"PAR1"
    # a change within the filesystem's clock tick of the write (a few ms) keeps the file's
    # identity (size, mtime, ctime, inode): readers would trust the verdict made at the
    # write until the doctor reads it again (llem.store.checks)
    time.sleep(0.05)
    path.write_bytes(bytes(data))


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def count(root: Path, table: str) -> int:
    r = run_cli("query", f"SELECT count(*) AS n FROM {table}", "--store", str(root),
                "--format", "csv")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return int(r.stdout.split()[1])


def test_a_flipped_page_reads_back_silently_without_the_checksum(root: Path) -> None:
    """What the page case below damages: a value, which a reader not checking page CRCs
    (DuckDB, pyarrow by default) hands back changed; llem writes the CRCs and checks them."""
    victim = files(root, "runs")[0]
    before = pq.read_table(victim)["tokens_per_s"].to_pylist()
    damage(victim, "page")
    assert pq.read_table(victim)["tokens_per_s"].to_pylist() != before
    with pytest.raises(OSError, match="CRC"):
        pq.ParquetFile(victim, page_checksum_verification=True).read()


@pytest.mark.parametrize("where", ["footer", "middle", "page"])
def test_damaged_runs_file_is_skipped_by_every_reader(root: Path, where: str) -> None:
    victim = files(root, "runs")[0]
    damage(victim, where)
    name = rel(root, victim)
    r = run_cli("query", "SELECT count(*) AS n FROM runs", "--store", str(root),
                "--format", "csv")
    assert r.returncode == 0 and r.stdout.split() == ["n", "3"], r.stderr
    lines = warnings(r.stderr)
    assert len(lines) == 1 and name in lines[0] and "damaged" in lines[0], r.stderr
    assert f"llem doctor {root}" in lines[0] and "run again on resume" in lines[0]
    assert r.stderr.strip() == lines[0]
    # its requests are left out with it: the job is seen whole or not at all
    assert count(root, "requests") == 6 and count(root, "stats") == 2
    res = run_cli("results", "--store", str(root), "--format", "csv")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert res.stdout.splitlines()[1].startswith("st,3,0,"), res.stdout
    assert len(warnings(res.stderr)) == 1
    exp = run_cli("export", "st", "--store", str(root))
    assert exp.returncode == 0 and len(exp.stdout.strip().splitlines()) == 1 + 3, exp.stderr
    store = Store(root)
    assert len(store.done("st")) == 3  # resume runs the damaged job again
    assert store.read("runs").num_rows == 3 and len(store.warnings) == 1

    doc = run_cli("doctor", str(root), "--json")
    assert doc.returncode == 1, doc.stdout
    assert f'"path": "{name}", "kind": "damaged"' in doc.stdout
    cleaned = run_cli("doctor", str(root), "--clean")
    assert cleaned.returncode == 0 and "quarantined" in cleaned.stdout, cleaned.stdout
    assert (root / ".quarantine" / name).read_bytes()[:4] == b"PAR1"
    req = root / "requests" / victim.parent.name / victim.name
    assert (root / ".quarantine" / rel(root, req)).exists() and not req.exists()
    again = run_cli("query", "SELECT count(*) AS n FROM runs", "--store", str(root),
                    "--format", "csv")
    assert again.stdout.split() == ["n", "3"] and again.stderr == "", again.stderr
    assert run_cli("doctor", str(root)).returncode == 0
    assert len(Store(root).done("st")) == 3


def test_doctor_reads_every_page(root: Path) -> None:
    """A flipped data page leaves the footer whole: the doctor still finds it."""
    victim = files(root, "requests")[1]
    damage(victim, "page", column="latency_s")
    kinds = {f.path: f.kind for f in inspect(Store(root)).findings}
    runs = rel(root, root / "runs" / victim.parent.name / victim.name)
    assert kinds == {rel(root, victim): "damaged", runs: "incomplete"}
    r = run_cli("doctor", str(root))
    assert r.returncode == 1 and "store is clean" not in r.stdout, r.stdout


def test_cleaning_a_damaged_requests_file_makes_its_job_run_again(root: Path) -> None:
    """The job of a damaged requests file is not done (resume runs it); `doctor --clean`
    moves its runs file aside with it, so it stays not done once the damaged file is gone
    (a requests file removed alone would leave its ok runs row: the job skipped for good,
    its request rows lost)."""
    results = noop_results(2)
    victim = files(root, "requests")[0]
    job, cycle = victim.name.split("-c")[0], int(victim.name.split("-c")[1].split("-")[0])
    damage(victim, "page", column="latency_s")
    store = Store(root)
    assert (job, cycle) not in store.done("st") and len(store.done("st")) == 3
    assert count(root, "runs") == 3 and count(root, "requests") == 6
    cleaned = inspect(Store(root), clean=True)
    assert {f.kind: f.action for f in cleaned.findings} == \
        {"damaged": "quarantined", "incomplete": "quarantined"}
    assert (job, cycle) not in Store(root).done("st")
    assert not list((root / "runs").rglob(f"{job}-c{cycle}-*.parquet"))
    # resume: the job is measured again, in its own session, and the store reads whole
    again = Store(root)
    again.write_result(next(r for r in results if r.run.key == (job, cycle)))
    assert len(Store(root).done("st")) == 4
    assert count(root, "runs") == 4 and count(root, "requests") == 8
    assert inspect(Store(root)).findings == []


def test_damaged_compacted_file_leaves_out_the_measurements_it_holds(root: Path) -> None:
    store = Store(root)
    compact(store)
    (victim,) = [p for p in files(root, "requests") if p.name.startswith("compact-")]
    damage(victim, "page", column="latency_s")
    r = run_cli("query", "SELECT count(*) AS n FROM runs", "--store", str(root),
                "--format", "csv")
    assert r.stdout.split() == ["n", "0"], r.stderr
    (line,) = warnings(r.stderr)
    assert rel(root, victim) in line and "its 4 measurements are left out" in line
    assert Store(root).done("st") == set()
    cleaned = inspect(Store(root), clean=True)
    assert sorted((f.kind, f.action) for f in cleaned.findings) == [
        ("damaged", "quarantined"), ("incomplete", "rewritten")], cleaned.findings
    assert Store(root).done("st") == set()  # the runs rows are gone from their file too
    assert inspect(Store(root)).findings == []
    assert count(root, "runs_all") == 0


def test_foreign_files_with_llem_names_add_no_rows(root: Path) -> None:
    """A file of other columns, or of llem's columns with batch_size as text, named like
    llem's: skipped with a warning each; no extra rows, no column turned into text."""
    camp = root / "runs" / "campaign=st"
    pq.write_table(pa.table({"job_id": ["abcdef0123456789"] * 3, "cycle": [0, 1, 2],
                             "status": ["ok"] * 3}), camp / "abcdef0123456789-c0.parquet")
    other = pq.read_table(files(root, "runs")[0])
    other = other.set_column(other.schema.get_field_index("batch_size"), "batch_size",
                             other["batch_size"].cast(pa.string()))
    other = other.set_column(other.schema.get_field_index("job_id"), "job_id",
                             pa.array(["fedcba9876543210"]))
    pq.write_table(other, camp / "fedcba9876543210-c0.parquet")
    extra = pq.read_table(files(root, "requests")[0]).append_column(
        "my_notes", pa.array(["x"] * 2))
    pq.write_table(extra, root / "requests" / "campaign=st" / "fedcba9876543210-c1.parquet")

    r = run_cli("query", "SELECT count(*) AS n, any_value(typeof(batch_size)) AS t FROM runs",
                "--store", str(root), "--format", "csv")
    assert r.returncode == 0 and r.stdout.split() == ["n,t", "4,INTEGER"], (r.stdout, r.stderr)
    lines = warnings(r.stderr)
    assert len(lines) == 3, r.stderr
    assert any("batch_size is string, not int32" in w for w in lines)
    assert any("without llem's columns schema_version, campaign" in w for w in lines)
    assert any("my_notes" in w for w in lines)
    assert all("foreign" in w for w in lines)
    assert count(root, "requests") == 8
    store = Store(root)
    assert len(store.done("st")) == 4 and store.read("runs").schema.field("batch_size").type \
        == pa.int32()
    findings = inspect(Store(root), clean=True).findings
    assert sorted(f.kind for f in findings) == ["foreign"] * 3
    assert all(f.action == "quarantined" for f in findings)
    assert count(root, "runs") == 4 and inspect(Store(root)).findings == []


def test_verdicts_are_kept_by_identity(root: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file is read whole once; later reads (other processes too: the JSON file in
    $LLEM_CACHE) only compare size, times and inode. A file changed in place, or a copy,
    is read again; files llem writes are recorded as whole without being read back."""
    shutil.copytree(root, tmp_path / "copy")
    checked: list[str] = []
    real = llem.store.checks.check_file

    def spy(fs, path, table):  # type: ignore[no-untyped-def]
        checked.append(path)
        return real(fs, path, table)

    monkeypatch.setattr(llem.store.checks, "check_file", spy)
    copy = tmp_path / "copy"
    Store(copy).listings()
    assert len(checked) == 8  # 4 runs, 4 requests: a copy is read once
    Store(copy).listings()
    assert len(checked) == 8
    llem.store.checks._REGISTRY.clear()  # a new process: the verdicts come from the file
    Store(copy).listings()
    assert len(checked) == 8
    victim = files(copy, "runs")[0]
    damage(victim, "page")  # same size: the mtime and ctime tell
    assert len(Store(copy).done("st")) == 3
    assert checked[8:] == [str(victim)]
    Store(root).listings()  # written by this process: recorded, never read back
    assert len(checked) == 9
    llem.store.checks._REGISTRY.clear()
    Store(root).listings()  # ... nor by another process (the log beside the verdicts)
    assert len(checked) == 9


def test_damage_after_the_check_is_caught_on_read(root: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A file changed in place under the same identity (what a bad disk does): DuckDB's
    error names the file; it is recorded as damaged and the query runs again without it."""
    store = Store(root)
    assert run_sql(store, "SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 4}]
    victim = files(root, "runs")[0]
    real = llem.store.checks.FileChecks.identity
    ident = {str(victim): real(store.checks, next(
        i for i in store.fs.get_file_info([str(victim)])))}
    damage(victim, "footer")
    monkeypatch.setattr(llem.store.checks.FileChecks, "identity",
                        lambda self, info: ident.get(info.path) or real(self, info))
    assert run_sql(store, "SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 3}]
    assert len(store.warnings) == 1 and victim.name in store.warnings[0]
