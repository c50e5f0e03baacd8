"""Which of a table's files a reader reads, once `llem compact` has merged some of them.

A compacted file (<table>/campaign=<name>/compact-<UTC time>-<hex>.parquet) holds the rows
of the files it replaced and names them in its Parquet key-value metadata (COMPACTED: name,
size and CRC-32 of each). Compaction renames it into place first and deletes its sources
after, so at any moment a source is either gone or still here with its old identity: it is
then hidden (its rows are read from the compacted file). A file of the same name with
another identity was written after compaction (a job rewritten): it stays visible, and the
compacted file's rows of that job and cycle are left out (`stale`), as a rewrite replaces a
per-job file. Without compacted files this is a plain listing, at the cost it had before.

A per-job file is one measurement of a job and cycle: `<job_id>-c<cycle>-<session>.parquet`
(`<job_id>-c<cycle>.parquet` in stores written before sessions); its name without
`.parquet` is the measurement's key, and a row's key is made the same way from its job_id,
cycle and session_id (row_key), so files and rows of one measurement are matched by name.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

COMPACTED = b"llem.compacted"  # key of the key-value metadata naming a compacted file's sources
COMPACT_PREFIX = "compact-"
JOB_FILE = re.compile(r"([0-9a-f]{8,64})-c([0-9]+)(?:-([0-9]{8}T[0-9]{6}-[0-9a-f]{8}))?"
                      r"\.parquet")


@dataclass(frozen=True)
class Source:
    """A file a compacted file replaced: its name in the partition folder, size and CRC-32."""

    name: str
    size: int
    crc: int


@dataclass
class Listing:
    files: list[str]  # what readers read: per-job files and compacted files, sorted
    stale: dict[str, set[str]] = field(default_factory=dict)  # compacted file -> keys
    # (row_key) of measurements whose rows in it are left out: replaced by a per-job file
    # written since, or of a measurement with a file that does not read
    hidden: list[str] = field(default_factory=list)  # rows already in a compacted file
    compacted: dict[str, list[Source]] = field(default_factory=dict)  # every compacted file
    sizes: dict[str, int] = field(default_factory=dict)  # path -> bytes, for files listed
    skipped: dict[str, Any] = field(default_factory=dict)  # path -> its Verdict
    # (llem.store.checks): llem-named files that do not read whole or are not llem's
    left_out: dict[str, set[str]] = field(default_factory=dict)  # compacted file -> keys of
    # measurements readers leave out (a file of theirs does not read; Store.listings)
    done: set[str] | None = None  # runs, from Store.listings: done_names of this listing

    def dropped(self, path: str) -> set[str]:
        """The measurement keys whose rows a reader leaves out of this (compacted) file."""
        return self.stale.get(path, set()) | self.left_out.get(path, set())


def is_compacted(path: str) -> bool:
    return path.rsplit("/", 1)[-1].startswith(COMPACT_PREFIX)


def job_cycle(name: str) -> tuple[str, int, str | None] | None:
    """(job_id, cycle, session or None) of a per-job file's name."""
    m = JOB_FILE.fullmatch(name)
    return (m.group(1), int(m.group(2)), m.group(3)) if m else None


def measurement(path: str) -> str:
    """'campaign=<name>/<key>' of a per-job file: its partition folder and name without
    .parquet (a key of the same measurement in every table)."""
    folder, name = path.rsplit("/", 2)[-2:]
    return f"{folder}/{name.removesuffix('.parquet')}"


def row_key(job_id: str, cycle: int, session: str | None) -> str:
    """The key of a row's measurement, as its per-job file is named without .parquet."""
    return f"{job_id}-c{cycle}-{session}" if session else f"{job_id}-c{cycle}"


def crc32(fs: pafs.FileSystem, path: str) -> int | None:
    """The file's CRC-32, or None when it cannot be read (gone since listing)."""
    try:
        with fs.open_input_stream(path) as f:
            crc = 0
            while chunk := f.read(1 << 22):
                crc = zlib.crc32(chunk, crc)
            return crc
    except OSError:
        return None


def sources_of(fs: pafs.FileSystem, path: str) -> list[Source] | None:
    """The sources a compacted file names; None for a file without them (not compacted)."""
    try:
        meta = pq.read_metadata(path, filesystem=fs).metadata or {}
        raw = json.loads(meta[COMPACTED])
        return [Source(str(n), int(s), int(c)) for n, s, c in raw["sources"]]
    except (OSError, KeyError, ValueError, TypeError):
        return None


def encode(sources: list[Source]) -> bytes:
    return json.dumps({"version": 1, "sources": [[s.name, s.size, s.crc] for s in sources]},
                      separators=(",", ":")).encode()


def named(infos: Iterable[pafs.FileInfo]) -> list[pafs.FileInfo]:
    """The entries whose name is UTF-8: pyarrow cannot give the path of another (it raises
    UnicodeDecodeError), and llem's own names are ASCII, so such a file is never llem's."""
    out = []
    for info in infos:
        try:
            info.path  # noqa: B018 (decoding it is the test)
        except UnicodeDecodeError:
            continue
        out.append(info)
    return out


def listing(fs: pafs.FileSystem, table: str, campaign: str | None,
            infos: list[pafs.FileInfo]) -> Listing:
    """Split the table's complete llem files (infos) into visible, hidden and stale."""
    sizes = {i.path: int(i.size) for i in infos}
    compacted: dict[str, list[Source]] = {}
    for path in sizes:
        if is_compacted(path):
            compacted[path] = sources_of(fs, path) or []
    if not compacted:
        return Listing(sorted(sizes), sizes=sizes)
    crcs: dict[str, int | None] = {}
    hidden: set[str] = set()
    other: dict[str, list[Source]] = {}  # compacted file -> its sources here with another id
    for cpath, sources in compacted.items():
        folder = cpath.rsplit("/", 1)[0]
        for s in sources:
            path = f"{folder}/{s.name}"
            if path not in sizes:
                continue
            same = sizes[path] == s.size
            if same:
                if path not in crcs:
                    crcs[path] = crc32(fs, path)
                same = crcs[path] == s.crc
            if same:
                hidden.add(path)
            else:
                other.setdefault(cpath, []).append(s)
    stale: dict[str, set[str]] = {}
    for cpath, sources in other.items():
        keys = {s.name.removesuffix(".parquet") for s in sources if job_cycle(s.name)}
        if keys and cpath not in hidden:
            stale[cpath] = keys
    return Listing(sorted(p for p in sizes if p not in hidden), stale, sorted(hidden),
                   compacted, sizes)


def done_names(fs: pafs.FileSystem, runs: Listing) -> set[str]:
    """'campaign=<name>/<key>.parquet' of every measurement with a runs row: its per-job
    runs file, or its row in a compacted runs file (left out where stale or left_out)."""
    done = {"/".join(p.rsplit("/", 2)[-2:]) for p in runs.files if not is_compacted(p)}
    for path in runs.files:
        if not is_compacted(path):
            continue
        folder = path.rsplit("/", 2)[-2]
        stale = runs.dropped(path)
        done.update(f"{folder}/{k}.parquet" for k in row_keys(fs, path) if k not in stale)
    return done


def row_keys(fs: pafs.FileSystem, path: str) -> list[str]:
    """The measurement key (row_key) of every row of a file."""
    pf = pq.ParquetFile(path, filesystem=fs)
    cols = ["job_id", "cycle"] + (["session_id"] if "session_id" in pf.schema_arrow.names
                                  else [])
    t = pf.read(columns=cols, use_threads=False)
    sessions = t["session_id"].to_pylist() if "session_id" in cols else [None] * t.num_rows
    return [row_key(j, c, s) for j, c, s in zip(t["job_id"].to_pylist(),
                                                t["cycle"].to_pylist(), sessions, strict=True)]


def drop_stale(table: Any, stale: set[str]) -> Any:
    """The rows of a compacted file's table whose measurement (row_key) is not in stale."""
    if not stale:
        return table
    import pyarrow as pa

    sessions = table["session_id"].to_pylist() if "session_id" in table.column_names else \
        [None] * table.num_rows
    keep = [row_key(j, c, s) not in stale for j, c, s in
            zip(table["job_id"].to_pylist(), table["cycle"].to_pylist(), sessions, strict=True)]
    return table.filter(pa.array(keep, pa.bool_()))


def leave_out(found: dict[str, Listing], tables: tuple[str, ...]) -> None:
    """Leave out of every table a measurement with a skipped file in any of them: its
    per-job files dropped, its rows left out of compacted files (left_out). A damaged
    compacted file's measurements are those its footer names, when it reads."""
    bad: set[str] = set()  # 'campaign=<name>/<key>'
    for table in tables:
        for path, verdict in found[table].skipped.items():
            folder, name = path.rsplit("/", 2)[-2:]
            if not is_compacted(name):
                if job_cycle(name):
                    bad.add(measurement(path))
                continue
            bad.update(f"{folder}/{n.removesuffix('.parquet')}" for n in verdict.sources
                       if job_cycle(n))
    if not bad:
        return
    for table in tables:
        listed = found[table]
        listed.files = [f for f in listed.files if is_compacted(f) or measurement(f) not in bad]
        for f in listed.files:
            if is_compacted(f):
                folder = f.rsplit("/", 2)[-2]
                keys = {k.split("/", 1)[1] for k in bad if k.startswith(folder + "/")}
                if keys:
                    listed.left_out[f] = keys
