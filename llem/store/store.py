"""The Parquet store: runs / requests / samples, hive-partitioned by campaign.

    <root>/runs/campaign=<name>/<job_id>-c<cycle>-<session>.parquet

One file per table, job, cycle and driver session (a measurement): a job measured again
(`llem run --rerun`, or a failed job run again) adds files beside the earlier ones, which
stay readable; stores written before sessions have <job_id>-c<cycle>.parquet, read alike.
Every file is written under <root>/.staging with a name not ending in .parquet, then renamed
into place, so readers (DuckDB, pyarrow.dataset) never see half a file and a crash leaves
nothing that looks done. The runs file is written last: it is the measurement's "done" mark.
Fixed schemas keep all-null columns typed.

Readers see a measurement whole or not at all: a file that does not read whole (cut short,
damaged) or is not llem's (another schema) is skipped with one warning naming it (through
on_warning; llem.store.checks keeps the verdicts), and the measurement it belongs to is left
out of every table, so resume runs it again.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import os
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from llem.config.models import check_name
from llem.credentials import mask_shapes
from llem.store.checks import FileChecks, Verdict, checks_for, first_line, skip_message
from llem.store.listing import (
    Listing,
    done_names,
    drop_stale,
    is_compacted,
    job_cycle,
    leave_out,
    named,
)
from llem.store.listing import listing as split_listing
from llem.store.run_row import Result
from llem.store.schema import (
    SCHEMA_VERSION,
    SCHEMAS,
    TABLES,
    StoreError,
    check_schema_versions,
    conform,
    is_data_path,
    to_table,
)
from llem.store.writable import check_local, check_remote, check_root_text, find_store

SMALL_ROWS = 64  # tables with fewer rows are written uncompressed (see Store._write)


SMALL_ROWS = 64  # tables with fewer rows are written uncompressed (see Store._write)
DATA_TABLES = ("runs", "requests", "samples")  # one file per measurement (job, cycle, session)


def new_session_id(now: float | None = None) -> str:
    """`<UTC time>-<8 hex>`: sorts by the time the session started (the first 4 hex digits
    are its fraction of a second, the last 4 random)."""
    now = time.time() if now is None else now
    frac = int((now % 1) * 0x10000)
    return (f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}-{frac:04x}"
            f"{uuid.uuid4().hex[:4]}")


class Store:
    """A store root on a local path or any pyarrow filesystem URI (s3://, gs://, ...).

    Each Store is one driver session (session_id, in every row and file name it writes;
    new_session() makes the next). on_warning gets one line per file readers skip (the CLI
    prints it; library code never prints); warnings keeps them too."""

    def __init__(self, root: str | Path, on_warning: Callable[[str], None] | None = None,
                 *, rerun: bool = False) -> None:
        text = str(root)
        check_root_text(text)
        if "://" in text:
            try:
                self.fs, self.root = pafs.FileSystem.from_uri(text)
            except Exception as exc:  # ArrowInvalid: an unknown scheme, a malformed URI
                raise StoreError(f"cannot open store '{mask_shapes(text)}': "
                                 f"{mask_shapes(first_line(exc))}") from None
            self.local = False
        else:
            try:
                local = Path(text).expanduser().resolve()
            except (RuntimeError, OSError, ValueError) as exc:  # ~nosuchuser, a NUL
                raise StoreError(f"cannot open store '{text}': {first_line(exc)}") from None
            self.fs, self.root = pafs.LocalFileSystem(), str(local)
            self.local = True
        # what is shown and kept (messages, the checks cache, reports): never a URL's password
        self.uri = mask_shapes(text) if not self.local else self.root
        self.session_id = new_session_id()
        self.rerun = rerun  # this session measures again: done() holds only its own rows
        self.on_warning = on_warning
        self.warnings: list[str] = []
        self.checks: FileChecks = checks_for(self.uri, self.root, self.local)

    def new_session(self, rerun: bool = False) -> Store:
        """This store for a new driver session (its own session id; rerun: see done())."""
        other = copy.copy(self)
        sid = new_session_id()
        while sid <= self.session_id:  # later than this one, however soon
            sid = new_session_id()
        other.session_id, other.rerun, other.warnings = sid, rerun, []
        return other

    def warn(self, message: str) -> None:
        """One line about what a reader skipped; each once per Store."""
        if message in self.warnings:
            return
        self.warnings.append(message)
        if self.on_warning is not None:
            self.on_warning(message)

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def rel(self, path: str) -> str:
        return path[len(self.root):].lstrip("/")

    def file_for(self, table: str, campaign: str, job_id: str, cycle: int,
                 session: str | None = None) -> str:
        """Where a result file of this session goes (or of `session`); a name that would
        leave the table's folder is refused."""
        check_name(campaign, "campaign name")
        check_name(job_id, "job id")
        rel = (f"{table}/campaign={campaign}/{job_id}-c{int(cycle)}-"
               f"{session or self.session_id}.parquet")
        if table not in DATA_TABLES or not is_data_path(rel):
            raise ValueError(f"not a store data path: {rel!r}")
        return self.path(rel)

    def write_result(self, result: Result) -> None:
        """Write a job's requests and samples, then its runs row (the done mark), each
        stamped with this session's id."""
        run = result.run
        if run.campaign is None:
            raise ValueError("a runs row needs its campaign")
        where = (run.campaign, *run.key)
        for table, rows in (("requests", result.requests), ("samples", result.samples)):
            if rows:
                self._write(to_table(table, rows), self.file_for(table, *where))
        run.session_id = self.session_id
        self._write(to_table("runs", [run]), self.file_for("runs", *where))

    @staticmethod
    def _stamped(table: pa.Table, dest: str) -> pa.Table:
        """The table with the session of its file's name in session_id: rows and file name
        name one measurement (llem.store.listing.row_key)."""
        jc = job_cycle(dest.rsplit("/", 1)[-1])
        i = table.schema.get_field_index("session_id")
        if jc is None or jc[2] is None or i < 0:
            return table
        return table.set_column(i, table.schema.field(i),
                                pa.repeat(pa.scalar(jc[2], pa.string()), table.num_rows))

    def write_session(self, campaign: str, row: dict[str, Any]) -> None:
        """One row per driver session, beside the campaign's runs (the model-load count)."""
        check_name(campaign, "campaign name")
        now = time.time()
        sid = self.session_id
        full = {"schema_version": SCHEMA_VERSION, "campaign": campaign, "session_id": sid,
                "started_at": now - float(row.get("elapsed_s") or 0.0), "finished_at": now,
                "rerun": self.rerun, **row}
        self._write(to_table("sessions", [full]),
                    self.path("sessions", f"campaign={campaign}", f"{sid}.parquet"))

    def _write(self, table: pa.Table, dest: str) -> None:
        table = self._stamped(table, dest)
        # A one-row runs file (~140 columns) does not shrink under zstd, and starting the
        # codec per column made it 3x slower to write (6.3 vs 1.9 ms): the driver writes one
        # per job on its critical path (make bench, items 1-2). Page checksums let a reader
        # find a flipped byte, which an uncompressed page would otherwise hand back as data.
        self.publish(dest, lambda out: pq.write_table(
            table, out, compression="zstd" if table.num_rows >= SMALL_ROWS else "none",
            write_page_checksum=True))

    def publish(self, dest: str, write: Callable[[Any], None]) -> None:
        """Run write(stream) on a temp file under .staging, then rename it to dest."""
        if not dest.startswith(self.root.rstrip("/") + "/") or "/../" in dest:
            raise ValueError(f"refusing to write outside the store {self.root}: {dest}")
        staging = self.path(".staging")
        tmp = f"{staging}/{uuid.uuid4().hex}.tmp"
        try:
            self.fs.create_dir(staging, recursive=True)
            self.fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
            with self.fs.open_output_stream(tmp) as out:
                write(out)
            if self.local:
                os.replace(tmp, dest)  # atomic on one filesystem
            else:
                self.fs.move(tmp, dest)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                self.fs.delete_file(tmp)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                rel = self.rel(dest)
                raise StoreError(f"store {self.uri}: disk full (or over quota) writing {rel}; "
                                 "nothing partial was left, results stored before it are "
                                 "intact: free space (or use another --store) and run again "
                                 "to resume") from None
            raise
        if is_data_path(self.rel(dest)):
            self.checks.recorded(dest)  # written whole just now: no need to read it back

    # -- which files readers read -----------------------------------------------------------

    def files(self, table: str, campaign: str | None = None) -> list[str]:
        """The table's data files readers read. Left out (`llem doctor STORE` lists them):
        hidden and temp files, files not named like llem's, files that do not read whole
        (cut short, damaged) or are not llem's (another schema), requests/samples of a
        measurement with no runs row (its driver died before the done mark), every file of
        a measurement with a file left out: a reader sees a job whole or not at all; and
        files whose rows a compacted file already holds (llem.store.listing)."""
        return self.listings(campaign)[table].files

    def listing(self, table: str, campaign: str | None = None,
                runs: Listing | None = None) -> Listing:
        """One table's files that read whole, with what compaction adds: hidden sources,
        stale rows of compacted files. runs: the runs listing of the same campaign(s), when
        the caller has it already (requests and samples are filtered by it; else it is
        listed again). Readers use listings(), which also leaves out the other files of a
        measurement with a file that does not read."""
        found = self._checked(table, campaign)
        if table in ("requests", "samples"):
            done = done_names(self.fs, runs if runs is not None else
                              self.listing("runs", campaign))
            found.files = [f for f in found.files if is_compacted(f) or
                           "/".join(f.rsplit("/", 2)[-2:]) in done]
        return found

    def listings(self, campaign: str | None = None) -> dict[str, Listing]:
        """Every table as readers see it (listing), measurements whole: a measurement (job,
        cycle, session) with a file in any table that does not read is left out of all of
        them (per-job files dropped, its rows left out of compacted files: left_out), so
        its job is not done and runs again on resume."""
        found = {t: self._checked(t, campaign) for t in TABLES}
        leave_out(found, DATA_TABLES)
        done = found["runs"].done = done_names(self.fs, found["runs"])
        for table in ("requests", "samples"):
            found[table].files = [f for f in found[table].files if is_compacted(f) or
                                  "/".join(f.rsplit("/", 2)[-2:]) in done]
        return found

    def _listed(self, table: str, campaign: str | None) -> list[pafs.FileInfo]:
        """The files under the table (or its campaign's folder) named like llem's."""
        base = self.path(table, f"campaign={campaign}") if campaign else self.path(table)
        sel = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        try:
            infos = named(self.fs.get_file_info(sel))
        except NotADirectoryError:  # a file where the table's folder should be: no rows
            return []
        return sorted((i for i in infos if i.type == pafs.FileType.File and
                       is_data_path(self.rel(i.path))), key=lambda i: i.path)

    def _checked(self, table: str, campaign: str | None) -> Listing:
        """The table's llem-named files split into visible, hidden and stale, those that do
        not read whole (or are not llem's) set aside in skipped, each with one warning."""
        infos = self._listed(table, campaign)
        prefix = f"{table}/campaign={campaign}/" if campaign else f"{table}/"
        verdicts = self.checks.verdicts(self.fs, table, infos, prefix)
        self.checks.save()
        good = [i for i in infos if i.path in verdicts and verdicts[i.path].ok]
        found = split_listing(self.fs, table, campaign, good)
        found.skipped = {p: v for p, v in verdicts.items() if not v.ok}
        for path, verdict in sorted(found.skipped.items()):
            self._skip_warning(path, verdict)
        return found

    def _skip_warning(self, path: str, verdict: Verdict) -> None:
        self.warn(skip_message(self.rel(path), verdict, self.uri))

    def damaged(self, path: str, exc: BaseException) -> None:
        """A file that passed its check failed to read after all (changed in place, under
        the same identity): recorded as damaged and warned about; the next read skips it."""
        verdict = Verdict("damaged", f"data does not read: {first_line(exc)}")
        self.checks.recorded(path, verdict)
        self.checks.save()
        self._skip_warning(path, verdict)

    def recheck(self) -> bool:
        """Read every data file whole again, trusting no kept verdict (a read failed without
        naming its file); True when one turned out not to read (it is then skipped)."""
        found = False
        for table in TABLES:
            infos = self._listed(table, None)
            verdicts = self.checks.verdicts(self.fs, table, infos, f"{table}/", fresh=True)
            for path, verdict in sorted(verdicts.items()):
                if not verdict.ok:
                    found = True
                    self._skip_warning(path, verdict)
        self.checks.save(force=True)
        return found

    # -- reading --------------------------------------------------------------------------

    def read(self, table: str, campaign: str | None = None,
             columns: list[str] | None = None) -> pa.Table:
        """The table's rows, every measurement (the `*_all` views; the `runs` view keeps the
        newest of each job and cycle), in the declared schema (columns a file written before
        lacks are null); a store written by another schema version is a StoreError."""
        for attempt in (0, 1):
            try:
                return self._read(table, campaign, columns)
            except FileNotFoundError:  # `llem compact` deleted a listed file meanwhile
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _read(self, table: str, campaign: str | None, columns: list[str] | None) -> pa.Table:
        listed = self.listings(campaign)[table]
        declared = SCHEMAS[table]
        if columns is not None:
            unknown = [c for c in columns if declared.get_field_index(c) < 0 and
                       not c.startswith("engine_")]
            if unknown:
                raise ValueError(f"not {table} columns: {unknown}")
        want = None if columns is None else list(dict.fromkeys(["schema_version", *columns]))
        parts = []
        for f in listed.files:
            drop = listed.dropped(f)
            try:
                pf = pq.ParquetFile(f, filesystem=self.fs)
                in_file = set(pf.schema_arrow.names)
                cols = None if want is None else [
                    c for c in [*want, *(("job_id", "cycle", "session_id") if drop else ())]
                    if c in in_file]
                t = pf.read(columns=cols, use_threads=False)
            except FileNotFoundError:
                raise
            except Exception as exc:  # damaged since its check (same size and times)
                self.damaged(f, exc)
                continue
            parts.append(drop_stale(t, drop).replace_schema_metadata(None))
        t = pa.concat_tables(parts, promote_options="permissive") if parts else \
            pa.Table.from_batches([], schema=declared)
        # from_batches, not Schema.empty_table(): that imports pandas (0.3 s of every first
        # run's start, before any worker is asked for)
        t = conform(table, t, want)
        self.check_versions(t["schema_version"].to_pylist())
        return t.select(columns) if columns is not None else t

    def check_versions(self, versions: Iterable[int | None]) -> None:
        msg = check_schema_versions(v for v in versions if v is not None)
        if msg:
            raise StoreError(f"store {self.uri}: {msg}")

    def done(self, campaign: str) -> set[tuple[str, int]]:
        """(job_id, cycle) pairs stored with status ok, in any session (a measurement left
        out for a file that does not read is not done): skipped on resume. A rerun session
        (rerun=True) counts only the rows it wrote itself: every job runs again."""
        t = self.read("runs", campaign, ["job_id", "cycle", "status", "session_id"])
        return {(j, c) for j, c, s, sid in zip(
            t["job_id"].to_pylist(), t["cycle"].to_pylist(), t["status"].to_pylist(),
            t["session_id"].to_pylist(), strict=True)
            if s == "ok" and (not self.rerun or sid == self.session_id)}

    def campaigns(self, table: str = "runs") -> list[str]:
        """The campaigns with a partition in table (runs: every campaign with a result)."""
        sel = pafs.FileSelector(self.path(table), allow_not_found=True)
        try:
            infos = named(self.fs.get_file_info(sel))
        except NotADirectoryError:
            return []
        return sorted(i.base_name.split("=", 1)[1] for i in infos
                      if i.type == pafs.FileType.Directory and i.base_name.startswith("campaign="))

    # -- is it a store, can it be written -------------------------------------------------

    def is_store(self) -> bool:
        """Is there a store at the root (llem.store.writable.find_store; a remote root that
        cannot be reached raises StoreError)."""
        return find_store(self)

    def check_writable(self, campaign: str | None = None) -> None:
        """Raise StoreError (one line) unless results can be written here (llem.store.
        writable): the root is a folder or can be made one, no file stands where llem writes
        a folder (.staging, a table's, a campaign's), and a probe file can be created and
        removed in .staging and in each folder a result is renamed into (or the nearest one
        that exists). Nothing is left behind: folders made for the probe are removed."""
        if self.local:
            check_local(self, campaign)
        else:
            check_remote(self)
