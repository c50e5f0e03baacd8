"""`llem doctor STORE`: find (and with --clean, remove) what does not belong in a store.

Readers already skip these files (llem.store.store.Store.files), so a store with them still reads;
the doctor says what they are, so a user can see why a row they expected is missing:

    staging   a temp file under .staging: a writer died mid-write (kill -9, node lost, disk full)
    partial   a .parquet file cut short (a copy tool writing in place): unreadable
    orphan    a job's requests/samples file without its runs row (the done mark, written
              last): the driver died between them; views still show its rows until removed
              (or until a rerun rewrites the job)
    foreign   a file that is not llem's (another name, another schema): moved to .quarantine
    version   a data file of another schema version: reported, never removed
    compacted a per-job file whose rows a compacted file already holds (`llem compact` was
              stopped before deleting it): readers skip it; `llem compact` or --clean
              removes it

Staging and orphan files younger than STAGING_GRACE_S may belong to a campaign writing right now and
are left alone. Removing is limited to what llem itself would have written (staging temps,
partial and orphan files); anything else is moved aside to <store>/.quarantine, never deleted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from llem.store.compact import LOCK, finish
from llem.store.listing import done_names, is_compacted
from llem.store.schema import SCHEMAS, TABLES, check_schema_versions, is_data_path
from llem.store.store import Store

STAGING_GRACE_S = 120.0
QUARANTINE = ".quarantine"
ID_COLUMNS = ("schema_version", "campaign", "job_id", "cycle")


@dataclass
class Finding:
    path: str  # relative to the store root
    kind: str  # staging | partial | orphan | foreign | version | compacted
    detail: str
    action: str = "none"  # none | removed | quarantined | kept (too young)


@dataclass
class Report:
    data_files: dict[str, int]
    findings: list[Finding]

    @property
    def problems(self) -> list[Finding]:
        """Findings still in the store after this run (cleaned ones are gone)."""
        return [f for f in self.findings if f.action not in ("removed", "quarantined")]


def inspect(store: Store, clean: bool = False, now: float | None = None) -> Report:
    """Walk every file under the store root and classify it; with clean, fix what is safe."""
    now = time.time() if now is None else now
    root = store.root.rstrip("/")
    sel = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    counts = dict.fromkeys(TABLES, 0)
    counts.setdefault("sessions", 0)
    findings: list[Finding] = []
    compacted: set[tuple[str, str]] = set()
    infos = [i for i in sorted(store.fs.get_file_info(sel), key=lambda i: i.path)
             if i.type == pafs.FileType.File]
    runs = store.listing("runs")
    listings = {t: runs if t == "runs" else store.listing(t, runs=runs) for t in TABLES}
    done = {i.path[len(root):].lstrip("/").split("/", 1)[1] for i in infos
            if i.path[len(root):].lstrip("/").startswith("runs/")} | \
        done_names(store.fs, listings["runs"])
    hidden = {p for t in TABLES for p in listings[t].hidden}
    for info in infos:
        rel = info.path[len(root):].lstrip("/")
        if rel.startswith(QUARANTINE + "/") or rel == LOCK:
            continue
        finding = _classify(store, info, rel, now) or _orphan(info, rel, done, now)
        if finding is None and info.path in hidden:
            finding = Finding(rel, "compacted", "rows already in a compacted file (a "
                              "compaction was stopped before removing it): readers skip it; "
                              "`llem compact` removes it")
            if clean:
                table, part = rel.split("/")[:2]
                finding.action = "removed"
                compacted.add((table, part.split("=", 1)[1]))
            findings.append(finding)
            continue
        if finding is None:
            counts[rel.split("/", 1)[0]] += 1
            continue
        if clean:
            _fix(store, info.path, finding)
        findings.append(finding)
    for table, campaign in sorted(compacted):  # sources before the compacted files hiding them
        finish(store, table, campaign)
    return Report(counts, findings)


def _age(info: pafs.FileInfo, now: float) -> float:
    return now - info.mtime.timestamp() if info.mtime is not None else float("inf")


def _orphan(info: pafs.FileInfo, rel: str, done: set[str], now: float) -> Finding | None:
    """A requests/samples file whose job-cycle has no runs file: the job never finished."""
    table, _, rest = rel.partition("/")
    if table not in ("requests", "samples") or rest in done or is_compacted(rel):
        return None  # a compacted file holds only rows of jobs with an ok runs row
    f = Finding(rel, "orphan", "rows of a job with no runs row (its driver died before the "
                "job's done mark); rerunning the campaign rewrites it")
    if _age(info, now) < STAGING_GRACE_S:
        f.detail += f"; younger than {STAGING_GRACE_S:.0f} s: a campaign may be writing it"
    return f


def _classify(store: Store, info: pafs.FileInfo, rel: str, now: float) -> Finding | None:
    if rel.startswith(".staging/"):
        age = _age(info, now)
        detail = f"temp file of an unfinished write ({info.size} bytes, {age:.0f} s old)"
        f = Finding(rel, "staging", detail)
        if age < STAGING_GRACE_S:
            f.detail += f"; younger than {STAGING_GRACE_S:.0f} s: a campaign may be writing it"
        return f
    if not is_data_path(rel):
        return Finding(rel, "foreign", "not a file llem writes here (name or place)")
    if not store.complete(info.path, info.size):
        return Finding(rel, "partial", f"Parquet file cut short ({info.size} bytes): unreadable")
    try:
        meta = pq.read_metadata(info.path, filesystem=store.fs)
        names = set(meta.schema.names)
        table = SCHEMAS.get(rel.split("/", 1)[0])
        missing = [c for c in ID_COLUMNS if c not in names and (table is None or
                                                                 c in table.names)]
        if missing:
            return Finding(rel, "foreign", f"Parquet file without llem's columns {missing}")
        versions = pq.read_table(info.path, filesystem=store.fs,
                                 columns=["schema_version"])["schema_version"].to_pylist()
    except Exception as exc:  # pyarrow: ArrowInvalid / OSError on a damaged footer
        return Finding(rel, "partial", f"unreadable Parquet: {str(exc).splitlines()[0][:200]}")
    msg = check_schema_versions(v for v in versions if v is not None)
    if msg:
        return Finding(rel, "version", msg)
    return None


def _fix(store: Store, path: str, f: Finding) -> None:
    if f.kind == "version" or "may be writing" in f.detail:
        f.action = "kept"
        return
    if f.kind in ("staging", "partial", "orphan"):
        store.fs.delete_file(path)
        f.action = "removed"
        return
    dest = store.path(QUARANTINE, f.path)
    store.fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
    store.fs.move(path, dest)
    f.action = "quarantined"
