"""`llem compact`: merge a campaign's per-job files into a few files per table.

A DuckDB query over 1,000 jobs reads 1,000 footers per table (a runs footer is ~27 KB for
one row); over one file per table the same aggregate is ~5x faster (benchmarks/query.py).
Each compacted file is written like every llem file (staged, renamed into place) and
names its sources with their size and CRC-32 (llem.store.listing); readers skip a source
from the moment the compacted file is in place, and compaction deletes the sources after.
Killed at any point, the store reads every row exactly once; running it again finishes.

Taken: measurements (job, cycle, session) whose runs row is ok (a failed one stays per-job:
a run that measures it again writes its own files beside it), their requests and samples
files, sessions files, and compacted files under half the size bound (merged again). Files
that do not read whole, and every file of their measurement, are never taken. Files
written while it runs stay per-job, so it is safe beside a running campaign (the driver
never rewrites an ok job; a file rewritten between the identity check and its deletion, by
two drivers of one campaign at once, is the one window left).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from llem.config.models import check_name
from llem.errors import UserError
from llem.store.listing import (
    COMPACTED,
    Listing,
    Source,
    done_names,
    drop_stale,
    encode,
    is_compacted,
    row_keys,
)
from llem.store.schema import TABLES
from llem.store.store import DATA_TABLES, Store

MAX_BYTES = 512 << 20  # input bytes per compacted file (Parquet, compressed)
ROW_GROUP = 1 << 17
READERS = 4  # threads reading sources: pyarrow decodes without the GIL
LOCK = ".compact.lock"  # at the store root: one compaction at a time (local stores)


@dataclass
class Compaction:
    """What one table of one campaign became."""

    campaign: str
    table: str
    sources: int = 0  # files merged
    rows: int = 0
    written: list[str] = dataclasses.field(default_factory=list)  # relative paths
    removed: int = 0  # sources deleted (and leftovers of an earlier, killed compaction)


def campaigns_of(store: Store, campaign: str | None) -> list[str]:
    """The campaigns to compact; a missing store or campaign is a UserError (one line)."""
    info = store.fs.get_file_info(store.root)
    if info.type != pafs.FileType.Directory:
        raise UserError(f"no store at {store.uri}")
    known = sorted({name for table in TABLES for name in store.campaigns(table)})
    if campaign is None:
        return known
    try:
        check_name(campaign, "campaign name")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if campaign not in known:
        raise UserError(f"no campaign {campaign!r} in store {store.uri} "
                        f"(campaigns: {', '.join(known) or 'none'})")
    return [campaign]


def compact(store: Store, campaign: str | None = None,
            max_bytes: int = MAX_BYTES) -> list[Compaction]:
    """Compact one campaign (or all) of the store; see the module docstring."""
    names = campaigns_of(store, campaign)
    out: list[Compaction] = []
    with _lock(store):
        for name in names:
            for table in TABLES:  # runs first: requests/samples follow its ok job-cycles
                done = Compaction(name, table, removed=finish(store, table, name))
                _compact_table(store, name, table, max_bytes, done)
                done.removed += finish(store, table, name)
                out.append(done)
    return out


@contextlib.contextmanager
def _lock(store: Store) -> Iterator[None]:
    """An exclusive lock on <store>/.compact.lock (released by the OS if the process dies):
    two compactions of one campaign would each merge the same files. Object stores have no
    such lock: run one compaction at a time there."""
    if not store.local:
        yield
        return
    import fcntl

    fd = os.open(store.path(LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another `llem compact` is running on {store.uri}") from None
        yield
    finally:
        os.close(fd)


def finish(store: Store, table: str, campaign: str) -> int:
    """Delete the files whose rows a compacted file holds (left by a compaction that was
    stopped before deleting them): sources first, a compacted file once no file it still
    hides is left, so no row is ever missing. Returns how many were deleted."""
    removed = 0
    while True:
        listed = store.listing(table, campaign)
        if not listed.hidden:
            return removed
        hidden = set(listed.hidden)
        plain = [p for p in listed.hidden if not is_compacted(p)]
        ready = plain or [c for c in listed.hidden if not _hides(listed, c, hidden)]
        if not ready:  # compacted files hiding each other: cannot be written so; leave them
            return removed
        for path in ready:
            with contextlib.suppress(FileNotFoundError):
                store.fs.delete_file(path)
                removed += 1


def drop_measurements(store: Store, campaign: str, keys: set[str]) -> list[tuple[str, int]]:
    """Rewrite the campaign's compacted files (every data table) that hold rows of the
    measurements `keys` (llem.store.listing.row_key) without those rows, as compaction
    rewrites a stale file: the new file in place first (naming the old one, which readers
    then skip), the old one deleted after. Returns (old file, rows left out) per file."""
    out = []
    with _lock(store):
        for table in DATA_TABLES:
            listed = store.listing(table, campaign)
            for path in [p for p in listed.files if is_compacted(p)]:
                n = sum(1 for k in row_keys(store.fs, path) if k in keys)
                if not n:
                    continue
                one = Listing([path], stale={path: listed.stale.get(path, set()) | keys},
                              sizes={path: listed.sizes[path]})
                _write_chunk(store, campaign, table, [path], one, Compaction(campaign, table))
                finish(store, table, campaign)
                out.append((store.rel(path), n))
    return out


def _hides(listed: Listing, cpath: str, hidden: set[str]) -> bool:
    folder = cpath.rsplit("/", 1)[0]
    return any(f"{folder}/{s.name}" in hidden for s in listed.compacted.get(cpath, []))


def _compact_table(store: Store, campaign: str, table: str, max_bytes: int,
                   report: Compaction) -> None:
    # as readers see them: files that read whole, of whole measurements only (a measurement
    # with a damaged file stays per-job: `llem doctor --clean` moves its files aside)
    found = store.listings(campaign)
    runs = found["runs"] if table in ("requests", "samples") else None
    listed = found[table]
    per_job = [p for p in listed.files if not is_compacted(p)]
    if runs is not None:  # requests, samples: only measurements whose ok runs row is compacted
        ok = done_names(store.fs, dataclasses.replace(
            runs, files=[p for p in runs.files if is_compacted(p)]))
        per_job = [p for p in per_job if "/".join(p.rsplit("/", 2)[-2:]) in ok]
    merged = [p for p in listed.files if is_compacted(p) and
              (p in listed.stale or listed.sizes[p] < max_bytes // 2)]
    if not per_job and not listed.stale:
        return
    chunk: list[str] = []
    size = 0
    for path in per_job + merged:  # new files first: a chunk of only old ones is skipped
        if chunk and size + listed.sizes[path] > max_bytes:
            _write_chunk(store, campaign, table, chunk, listed, report)
            chunk, size = [], 0
        chunk.append(path)
        size += listed.sizes[path]
    if chunk:
        _write_chunk(store, campaign, table, chunk, listed, report)


def _write_chunk(store: Store, campaign: str, table: str, paths: list[str], listed: Listing,
                 report: Compaction) -> None:
    """One compacted file from `paths`: schemas unified first (runs files differ in their
    engine_* columns), then the rows streamed in row groups; its sources go in its footer."""
    schema: pa.Schema | None = None
    usable: list[str] = []
    for path in paths:
        try:
            s = pq.read_schema(path, filesystem=store.fs).remove_metadata()
            schema = s if schema is None else pa.unify_schemas(
                [schema, s], promote_options="permissive")
            usable.append(path)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError):
            continue  # a column of another type (or gone since listing): it stays per-job
    if schema is None or (len(usable) == 1 and is_compacted(usable[0]) and
                          usable[0] not in listed.stale):
        return
    now = time.gmtime()
    name = f"compact-{time.strftime('%Y%m%dT%H%M%S', now)}-{uuid.uuid4().hex[:8]}.parquet"
    dest = store.path(table, f"campaign={campaign}", name)
    sources: list[Source] = []
    rows = 0

    def fresh() -> bool:  # anything to merge but compacted files as they are?
        return any(not is_compacted(s.name) for s in sources) or \
            any(p in listed.stale for p in usable)

    def write(out: Any) -> None:
        nonlocal rows
        buffered: list[pa.Table] = []
        pending = 0
        with pq.ParquetWriter(out, schema, compression="zstd",
                              write_page_checksum=True) as writer, \
                ThreadPoolExecutor(READERS) as pool:
            ahead = _ahead(pool, lambda p: None if is_compacted(p) else
                           _read(store, p, table, listed), usable)
            for path, got in zip(usable, ahead, strict=True):
                if is_compacted(path):  # last in the chunk, large: read here, if need be
                    if not fresh():
                        raise _Unchanged  # nothing new (failed runs are left out)
                    got = _read(store, path, table, listed)
                if got is None:
                    continue
                data, source = got
                sources.append(source)
                buffered.append(data)
                rows += data.num_rows
                pending += data.num_rows
                if pending >= ROW_GROUP:
                    writer.write_table(_conform(buffered, schema), row_group_size=ROW_GROUP)
                    buffered, pending = [], 0
            if not fresh():
                raise _Unchanged
            if buffered:
                writer.write_table(_conform(buffered, schema), row_group_size=ROW_GROUP)
            writer.add_key_value_metadata({COMPACTED: encode(sources)})

    try:
        store.publish(dest, write)
    except _Unchanged:
        return
    report.sources += len(sources)
    report.rows += rows
    report.written.append(dest[len(store.root):].lstrip("/"))


def _ahead(pool: ThreadPoolExecutor, fn: Callable[[str], Any],
           paths: list[str]) -> Iterator[Any]:
    """fn over paths in order, READERS * 4 files read ahead at most (memory stays bounded)."""
    window = READERS * 4
    for start in range(0, len(paths), window):
        yield from pool.map(fn, paths[start:start + window])


class _Unchanged(Exception):
    """Nothing new to merge: the staged file is dropped."""


def _read(store: Store, path: str, table: str,
          listed: Listing) -> tuple[pa.Table, Source] | None:
    """The file's rows and identity, from one read of its bytes; None for a runs file that
    is not all ok (it will be re-run) or a file gone since listing."""
    try:
        with store.fs.open_input_file(path) as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    # ParquetFile, one thread: 2.5x faster than read_table on a one-row, 132-column file
    data = pq.ParquetFile(pa.BufferReader(raw)).read(use_threads=False)
    if table == "runs" and not is_compacted(path) and \
            any(s != "ok" for s in data["status"].to_pylist()):
        return None
    data = drop_stale(data, listed.stale.get(path, set()))
    return data, Source(path.rsplit("/", 1)[-1], len(raw), zlib.crc32(raw))


def _conform(parts: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """The parts as one table of `schema`: columns a part lacks are null (as union_by_name
    reads them). Once per row group: per one-row runs table it was most of the time."""
    t = pa.concat_tables([p.replace_schema_metadata(None) for p in parts],
                         promote_options="permissive")
    have = set(t.column_names)
    cols = [t.column(f.name) if f.name in have else pa.nulls(t.num_rows, f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, names=schema.names).cast(schema)
