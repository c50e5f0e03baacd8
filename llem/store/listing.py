"""Which of a table's files a reader reads, once `llem compact` has merged some of them.

A compacted file (<table>/campaign=<name>/compact-<UTC time>-<hex>.parquet) holds the rows
of the files it replaced and names them in its Parquet key-value metadata (COMPACTED: name,
size and CRC-32 of each). Compaction renames it into place first and deletes its sources
after, so at any moment a source is either gone or still here with its old identity: it is
then hidden (its rows are read from the compacted file). A file of the same name with
another identity was written after compaction (a job rewritten): it stays visible, and the
compacted file's rows of that job and cycle are left out (`stale`), as a rewrite replaces a
per-job file. Without compacted files this is a plain listing, at the cost it had before.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

COMPACTED = b"llem.compacted"  # key of the key-value metadata naming a compacted file's sources
COMPACT_PREFIX = "compact-"
JOB_FILE = re.compile(r"([0-9a-f]{8,64})-c([0-9]+)\.parquet")


@dataclass(frozen=True)
class Source:
    """A file a compacted file replaced: its name in the partition folder, size and CRC-32."""

    name: str
    size: int
    crc: int


@dataclass
class Listing:
    files: list[str]  # what readers read: per-job files and compacted files, sorted
    stale: dict[str, set[tuple[str, int]]] = field(default_factory=dict)  # compacted file ->
    # (job_id, cycle) whose rows in it were replaced by a per-job file written since
    hidden: list[str] = field(default_factory=list)  # rows already in a compacted file
    compacted: dict[str, list[Source]] = field(default_factory=dict)  # every compacted file
    sizes: dict[str, int] = field(default_factory=dict)  # path -> bytes, for files listed


def is_compacted(path: str) -> bool:
    return path.rsplit("/", 1)[-1].startswith(COMPACT_PREFIX)


def job_cycle(name: str) -> tuple[str, int] | None:
    m = JOB_FILE.fullmatch(name)
    return (m.group(1), int(m.group(2))) if m else None


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
    stale: dict[str, set[tuple[str, int]]] = {}
    for cpath, sources in other.items():
        pairs = {jc for s in sources if (jc := job_cycle(s.name)) is not None}
        if pairs and cpath not in hidden:
            stale[cpath] = pairs
    return Listing(sorted(p for p in sizes if p not in hidden), stale, sorted(hidden),
                   compacted, sizes)


def done_names(fs: pafs.FileSystem, runs: Listing) -> set[str]:
    """'campaign=<name>/<job_id>-c<cycle>.parquet' of every job-cycle with a runs row: its
    per-job runs file, or its row in a compacted runs file (left out where stale)."""
    done = {"/".join(p.rsplit("/", 2)[-2:]) for p in runs.files if not is_compacted(p)}
    for path in runs.files:
        if not is_compacted(path):
            continue
        folder = path.rsplit("/", 2)[-2]
        t = pq.read_table(path, filesystem=fs, columns=["job_id", "cycle"])
        stale = runs.stale.get(path, set())
        done.update(f"{folder}/{j}-c{c}.parquet" for j, c in
                    zip(t["job_id"].to_pylist(), t["cycle"].to_pylist(), strict=True)
                    if (j, c) not in stale)
    return done


def drop_stale(table: Any, stale: set[tuple[str, int]]) -> Any:
    """The rows of a compacted file's table whose job and cycle were not rewritten since."""
    if not stale:
        return table
    import pyarrow as pa

    keep = [(j, c) not in stale for j, c in
            zip(table["job_id"].to_pylist(), table["cycle"].to_pylist(), strict=True)]
    return table.filter(pa.array(keep, pa.bool_()))
