"""`llem doctor STORE`: find (and with --clean, remove) what does not belong in a store.

Readers already skip these files (llem.store.store.Store.listings), so a store with them
still reads, each skipped file named in one warning; the doctor says what they are, so a
user can see why a row they expected is missing. It reads every data file whole (footer,
schema, every data page with its checksum: llem.store.checks.check_file), trusting no
earlier verdict, and records what it finds for the readers.

    staging    a temp file under .staging: a writer died mid-write (kill -9, node lost, disk
               full)
    partial    a .parquet file cut short (a copy tool writing in place): unreadable
    damaged    a .parquet file whose markers are whole but whose footer or a data page does
               not read (a flipped byte, a bad sector, a copy gone wrong)
    foreign    a file that is not llem's (another name, another place, another schema or a
               column of another type): moved to .quarantine
    incomplete another file of a measurement (job, cycle, session) with a partial, damaged
               or foreign file: readers leave the whole measurement out and resume runs the
               job again; --clean moves it aside to .quarantine with that file, so the job
               runs again for good (a requests file removed alone would leave its ok runs row
               done, its request rows lost)
    orphan     a job's requests/samples file without its runs row (the done mark, written
               last): the driver died between them; readers skip it
    version    a data file of another schema version: reported, never removed
    compacted  a per-job file whose rows a compacted file already holds (`llem compact` was
               stopped before deleting it): readers skip it; `llem compact` or --clean
               removes it

A damaged compacted file holds the rows of many measurements: --clean moves it aside, and
the rows of the measurements it names (its footer's sources, when the footer reads) are
rewritten out of the other tables' compacted files, so those jobs run again too; a footer
that does not read names none (`llem run --rerun` measures the campaign again).

Staging and orphan files younger than STAGING_GRACE_S may belong to a campaign writing right
now and are left alone. Removing is limited to what llem itself would have written (staging
temps, partial and orphan files); anything else is moved aside to <store>/.quarantine, never
deleted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from llem.store.checks import Verdict
from llem.store.compact import LOCK, drop_measurements, finish
from llem.store.listing import done_names, is_compacted, job_cycle, measurement, named
from llem.store.schema import TABLES, check_schema_versions, is_data_path
from llem.store.store import DATA_TABLES, Store

STAGING_GRACE_S = 120.0
QUARANTINE = ".quarantine"
PROBLEM_KINDS = ("partial", "damaged", "foreign")  # a data file that makes its measurement
# incomplete


@dataclass
class Finding:
    path: str  # relative to the store root
    kind: str  # staging | partial | damaged | foreign | incomplete | orphan | version |
    # compacted
    detail: str
    action: str = "none"  # none | removed | quarantined | kept (too young) | rewritten


@dataclass
class Report:
    data_files: dict[str, int]
    findings: list[Finding]

    @property
    def problems(self) -> list[Finding]:
        """Findings still in the store after this run (cleaned ones are gone)."""
        return [f for f in self.findings
                if f.action not in ("removed", "quarantined", "rewritten")]


def inspect(store: Store, clean: bool = False, now: float | None = None) -> Report:
    """Walk every file under the store root and classify it; with clean, fix what is safe."""
    now = time.time() if now is None else now
    root = store.root.rstrip("/")
    sel = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    counts = dict.fromkeys(TABLES, 0)
    findings: list[Finding] = []
    compacted: set[tuple[str, str]] = set()
    infos = [i for i in sorted(named(store.fs.get_file_info(sel)), key=lambda i: i.path)
             if i.type == pafs.FileType.File]
    verdicts = _verdicts(store, infos)
    bad = _bad_measurements(store, verdicts)  # measurement -> the file that makes it so
    runs = store.listing("runs")
    listings = {t: runs if t == "runs" else store.listing(t, runs=runs) for t in TABLES}
    done = {store.rel(i.path).split("/", 1)[1] for i in infos
            if store.rel(i.path).startswith("runs/") and i.path in verdicts and
            verdicts[i.path].ok} | done_names(store.fs, listings["runs"])
    hidden = {p for t in TABLES for p in listings[t].hidden}
    for info in infos:
        rel = store.rel(info.path)
        if rel.startswith(QUARANTINE + "/") or rel == LOCK:
            continue
        finding = _classify(store, info, rel, now, verdicts.get(info.path)) or \
            _incomplete(info, rel, bad) or _orphan(info, rel, done, now)
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
    if clean:
        findings += _rewrite_compacted(store, bad)
    return Report(counts, findings)


def _verdicts(store: Store, infos: list[pafs.FileInfo]) -> dict[str, Verdict]:
    """Every data file read whole again (no earlier verdict trusted), by path; the verdicts
    are recorded for readers."""
    out: dict[str, Verdict] = {}
    for table in TABLES:
        mine = [i for i in infos if store.rel(i.path).startswith(f"{table}/") and
                is_data_path(store.rel(i.path))]
        out.update(store.checks.verdicts(store.fs, table, mine, f"{table}/", fresh=True))
    store.checks.save(force=True)
    return out


def _bad_measurements(store: Store, verdicts: dict[str, Verdict]) -> dict[str, str]:
    """'campaign=<name>/<key>' of each measurement with a data file that does not read (or
    is not llem's) -> that file, relative to the store root."""
    bad: dict[str, str] = {}
    for path, v in sorted(verdicts.items()):
        rel = store.rel(path)
        if v.ok or rel.split("/", 1)[0] not in DATA_TABLES:
            continue
        folder, name = path.rsplit("/", 2)[-2:]
        if not is_compacted(name):
            if job_cycle(name):
                bad.setdefault(measurement(path), rel)
            continue
        for n in v.sources:
            if job_cycle(n):
                bad.setdefault(f"{folder}/{n.removesuffix('.parquet')}", rel)
    return bad


def _incomplete(info: pafs.FileInfo, rel: str, bad: dict[str, str]) -> Finding | None:
    """A per-job file of a measurement another file of which does not read."""
    table = rel.split("/", 1)[0]
    if table not in DATA_TABLES or is_compacted(rel) or not job_cycle(rel.rsplit("/", 1)[-1]):
        return None
    cause = bad.get(measurement(info.path))
    if cause is None:
        return None
    return Finding(rel, "incomplete", f"its measurement's {cause} does not read: readers leave "
                   "the measurement out and resume runs the job again; --clean moves it "
                   "aside with that file")


def _orphan(info: pafs.FileInfo, rel: str, done: set[str], now: float) -> Finding | None:
    """A requests/samples file whose job-cycle has no runs file: the job never finished."""
    table, _, rest = rel.partition("/")
    if table not in ("requests", "samples") or rest in done or is_compacted(rel):
        return None  # a compacted file holds only rows of jobs with an ok runs row
    f = Finding(rel, "orphan", "rows of a job with no runs row (its driver died before the "
                "job's done mark); readers skip it, a rerun writes the job under its own "
                "session, --clean removes it")
    if _age(info, now) < STAGING_GRACE_S:
        f.detail += f"; younger than {STAGING_GRACE_S:.0f} s: a campaign may be writing it"
    return f


def _age(info: pafs.FileInfo, now: float) -> float:
    return now - info.mtime.timestamp() if info.mtime is not None else float("inf")


def _classify(store: Store, info: pafs.FileInfo, rel: str, now: float,
              verdict: Verdict | None) -> Finding | None:
    if rel.startswith(".staging/"):
        age = _age(info, now)
        detail = f"temp file of an unfinished write ({info.size} bytes, {age:.0f} s old)"
        f = Finding(rel, "staging", detail)
        if age < STAGING_GRACE_S:
            f.detail += f"; younger than {STAGING_GRACE_S:.0f} s: a campaign may be writing it"
        return f
    if not is_data_path(rel):
        return Finding(rel, "foreign", "not a file llem writes here (name or place)")
    if verdict is None:  # gone since listing
        return None
    if not verdict.ok:
        return Finding(rel, verdict.kind, verdict.detail + _holds(verdict))
    try:
        versions = pq.read_table(info.path, filesystem=store.fs,
                                 columns=["schema_version"])["schema_version"].to_pylist()
    except Exception as exc:  # changed since its check
        return Finding(rel, "damaged", f"data does not read: {str(exc).splitlines()[0][:200]}")
    msg = check_schema_versions(v for v in versions if v is not None)
    if msg:
        return Finding(rel, "version", msg)
    return None


def _holds(v: Verdict) -> str:
    if v.kind != "damaged" or not v.sources:
        return ""
    return f"; it holds the rows of {len(v.sources)} measurements, which run again"


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


def _rewrite_compacted(store: Store, bad: dict[str, str]) -> list[Finding]:
    """The rows of measurements with a file cleaned away, taken out of the compacted files
    that still hold them (every table), so their jobs run again."""
    out = []
    by_campaign: dict[str, set[str]] = {}
    for key in bad:
        folder, stem = key.split("/", 1)
        by_campaign.setdefault(folder.split("=", 1)[1], set()).add(stem)
    for campaign, keys in sorted(by_campaign.items()):
        for rel, n in drop_measurements(store, campaign, keys):
            out.append(Finding(rel, "incomplete", f"compacted file holding {n} rows of "
                               "measurements with a file that does not read: rewritten "
                               "without them, so their jobs run again", "rewritten"))
    return out
