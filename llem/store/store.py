"""The Parquet store: runs / requests / samples, hive-partitioned by campaign.

    <root>/runs/campaign=<name>/<job_id>-c<cycle>.parquet

Every file is written under <root>/.staging with a name not ending in .parquet, then renamed
into place, so readers (DuckDB, pyarrow.dataset) never see half a file and a crash leaves
nothing that looks done. The runs file is written last: it is the job's "done" mark. Fixed
schemas keep all-null columns typed.
"""

from __future__ import annotations

import contextlib
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
from llem.errors import UserError
from llem.store.listing import Listing, done_names, drop_stale, is_compacted
from llem.store.listing import listing as split_listing
from llem.store.run_row import Result
from llem.store.schema import (
    MAGIC,
    SCHEMA_VERSION,
    SCHEMAS,
    TABLES,
    check_schema_versions,
    is_data_path,
    to_table,
)

SMALL_ROWS = 64  # tables with fewer rows are written uncompressed (see Store._write)


class StoreError(UserError):
    """The store cannot be read as asked (another schema version, disk full): one line."""


class Store:
    """A store root on a local path or any pyarrow filesystem URI (s3://, gs://, ...)."""

    def __init__(self, root: str | Path) -> None:
        text = str(root)
        if "://" in text:
            self.fs, self.root = pafs.FileSystem.from_uri(text)
            self.local = False
        else:
            self.fs, self.root = pafs.LocalFileSystem(), str(Path(text).expanduser().resolve())
            self.local = True
        self.uri = text if not self.local else self.root

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def file_for(self, table: str, campaign: str, job_id: str, cycle: int) -> str:
        """Where a result file goes; a name that would leave the table's folder is refused."""
        check_name(campaign, "campaign name")
        check_name(job_id, "job id")
        rel = f"{table}/campaign={campaign}/{job_id}-c{int(cycle)}.parquet"
        if table not in TABLES or not is_data_path(rel):
            raise ValueError(f"not a store data path: {rel!r}")
        return self.path(rel)

    def write_result(self, result: Result) -> None:
        """Write a job's requests and samples, then its runs row (the done mark)."""
        run = result.run
        if run.campaign is None:
            raise ValueError("a runs row needs its campaign")
        where = (run.campaign, *run.key)
        for table, rows in (("requests", result.requests), ("samples", result.samples)):
            if rows:
                self._write(to_table(table, rows), self.file_for(table, *where))
        self._write(to_table("runs", [run]), self.file_for("runs", *where))

    def write_session(self, campaign: str, row: dict[str, Any]) -> None:
        """One row per driver session, beside the campaign's runs (the model-load count)."""
        check_name(campaign, "campaign name")
        now = time.time()
        sid = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}-{uuid.uuid4().hex[:8]}"
        full = {"schema_version": SCHEMA_VERSION, "campaign": campaign, "session_id": sid,
                "started_at": now - float(row.get("elapsed_s") or 0.0), "finished_at": now,
                **row}
        self._write(to_table("sessions", [full]),
                    self.path("sessions", f"campaign={campaign}", f"{sid}.parquet"))

    def _write(self, table: pa.Table, dest: str) -> None:
        # A one-row runs file (~140 columns) does not shrink under zstd, and starting the
        # codec per column made it 3x slower to write (6.3 vs 1.9 ms): the driver writes one
        # per job on its critical path (make bench, items 1-2).
        self.publish(dest, lambda out: pq.write_table(
            table, out, compression="zstd" if table.num_rows >= SMALL_ROWS else "none"))

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
                rel = dest[len(self.root):].lstrip("/")
                raise StoreError(f"store {self.uri}: disk full (or over quota) writing {rel}; "
                                 "nothing partial was left, results stored before it are "
                                 "intact: free space (or use another --store) and run again "
                                 "to resume") from None
            raise

    def files(self, table: str, campaign: str | None = None) -> list[str]:
        """The table's complete data files. Left out (`llem doctor STORE` lists them): hidden
        and temp files, files not named like llem's, Parquet files cut short (a foreign copy
        tool writing in place), requests/samples of a job-cycle with no runs row (its driver
        died before the done mark): a reader sees a job whole or not at all; and files whose
        rows a compacted file already holds (llem.store.listing)."""
        return self.listing(table, campaign).files

    def listing(self, table: str, campaign: str | None = None,
                runs: Listing | None = None) -> Listing:
        """files() with what compaction adds: hidden sources, stale rows of compacted files.
        runs: the runs listing of the same campaign(s), when the caller has it already
        (requests and samples are filtered by it; else it is listed again)."""
        found = split_listing(self.fs, table, campaign, self._listed(table, campaign))
        if table in ("requests", "samples"):
            done = done_names(self.fs, runs if runs is not None else
                              self.listing("runs", campaign))
            found.files = [f for f in found.files if is_compacted(f) or
                           "/".join(f.rsplit("/", 2)[-2:]) in done]
        return found

    def _listed(self, table: str, campaign: str | None) -> list[pafs.FileInfo]:
        base = self.path(table, f"campaign={campaign}") if campaign else self.path(table)
        sel = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        return sorted((i for i in self.fs.get_file_info(sel)
                       if i.type == pafs.FileType.File and
                       is_data_path(i.path[len(self.root):]) and self.complete(i.path, i.size)),
                      key=lambda i: i.path)

    def complete(self, path: str, size: int | None = None) -> bool:
        """A whole Parquet file starts and ends with PAR1; a truncated one does not end so.
        Object stores (s3://, gs://) publish an object whole or not at all: only the size
        is checked there, saving two requests per file on every read."""
        if size is not None and size < 12:
            return False
        if not isinstance(self.fs, pafs.LocalFileSystem) and size is not None:
            return True
        try:
            with self.fs.open_input_file(path) as f:
                n = f.size()
                return bool(n >= 12 and f.read_at(4, 0) == MAGIC and
                            f.read_at(4, n - 4) == MAGIC)
        except OSError:  # vanished between listing and opening, or unreadable
            return False

    def read(self, table: str, campaign: str | None = None,
             columns: list[str] | None = None) -> pa.Table:
        """The table's rows; a store written by another schema version is a StoreError."""
        listed = self.listing(table, campaign)
        if not listed.files:
            # from_batches, not Schema.empty_table(): that imports pandas (0.3 s of every
            # first run's start, before any worker is asked for)
            empty = pa.Table.from_batches([], schema=SCHEMAS[table])
            return empty.select(columns or SCHEMAS[table].names)
        want = columns if columns is None or "schema_version" in columns else \
            ["schema_version", *columns]
        if listed.stale and want is not None:
            want = [*want, *(c for c in ("job_id", "cycle") if c not in want)]
        parts = [drop_stale(pq.read_table(f, filesystem=self.fs, columns=want),
                            listed.stale.get(f, set())).replace_schema_metadata(None)
                 for f in listed.files]
        t = pa.concat_tables(parts, promote_options="permissive")
        self.check_versions(t["schema_version"].to_pylist())
        return t.select(columns) if columns is not None else t

    def check_versions(self, versions: Iterable[int | None]) -> None:
        msg = check_schema_versions(v for v in versions if v is not None)
        if msg:
            raise StoreError(f"store {self.uri}: {msg}")

    def done(self, campaign: str) -> set[tuple[str, int]]:
        """(job_id, cycle) pairs already stored with status ok: these are skipped on resume."""
        t = self.read("runs", campaign, ["job_id", "cycle", "status"])
        return {(j, c) for j, c, s in zip(t["job_id"].to_pylist(), t["cycle"].to_pylist(),
                                          t["status"].to_pylist(), strict=True) if s == "ok"}

    def campaigns(self, table: str = "runs") -> list[str]:
        """The campaigns with a partition in table (runs: every campaign with a result)."""
        sel = pafs.FileSelector(self.path(table), allow_not_found=True)
        return sorted(i.base_name.split("=", 1)[1] for i in self.fs.get_file_info(sel)
                      if i.type == pafs.FileType.Directory and i.base_name.startswith("campaign="))
