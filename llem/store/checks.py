"""Which of the store's files read whole and are llem's: each data file is checked once,
fully, and the verdict kept by the file's identity, so a later read costs a stat.

A check (check_file) reads the file as a reader would, all of it: both PAR1 markers (a file
cut short is `partial`), the footer, the schema against llem's declarations (a file of other
columns, or of a column of another type, is `foreign`: llem.store.schema.schema_problem),
then every data page of every column, with its CRC where the writer stored one (llem writes
them; a flipped byte in an uncompressed page reads back silently otherwise). A file that
fails is `damaged`. DuckDB checks no page CRC and stops a whole query at one bad page, so
readers hand it only files that passed.

Checking every file on every read would double a query's time (a one-row, ~140-column runs
file takes ~3.6 ms to read whole, 1,000 of them ~3.6 s, against ~0.1 s for a stat of each):
verdicts are kept by identity (size, mtime, and on local disks ctime and inode, which no
rewrite keeps) in $LLEM_CACHE/store-checks/<hash of the store URI>.json (default
~/.cache/llem), shared by every process on the machine, and in memory. A file llem itself
just renamed into place is recorded as whole without reading it back (Store.publish), in a
log beside that file, so the driver's files are never read back by `llem query` on the same
machine; a store copied from elsewhere is read once. The doctor (`llem doctor STORE`)
never trusts the record: it checks every file again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from llem.paths import cache_root
from llem.store.listing import is_compacted, job_cycle, sources_of
from llem.store.schema import MAGIC, SCHEMAS, schema_problem

CHECK_VERSION = 1  # raise when check_file finds more: every kept verdict is then made again
IN_MEMORY = 200_000  # files llem wrote recorded per process (the driver's, one per file)
SMALL = 8 << 20  # files up to this size are read into memory in one call
THREADS = 4  # files checked at once (pyarrow decodes without the GIL)
# the declarations the verdicts were made against: a column added or retyped checks again
_SCHEMAS = hashlib.sha256(repr(sorted((t, s.to_string()) for t, s in SCHEMAS.items()))
                          .encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Verdict:
    """What a check found: kind "" (whole, llem's), partial, damaged or foreign."""

    kind: str = ""
    detail: str = ""
    sources: tuple[str, ...] = ()  # a compacted file that does not read: the per-job files it
    # replaced (their measurements), when its footer still reads
    lasting: bool = True  # False: an I/O error that may pass (not kept; checked again)

    @property
    def ok(self) -> bool:
        return not self.kind


WHOLE = Verdict()


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def check_file(fs: pafs.FileSystem, path: str, table: str) -> Verdict:
    """Read the file whole (footer, schema, every page with its checksum); raises
    FileNotFoundError for a file gone since listing."""
    try:
        with fs.open_input_file(path) as f:
            size = f.size()
            if size < 12 or f.read_at(4, 0) != MAGIC or f.read_at(4, size - 4) != MAGIC:
                return Verdict("partial", f"Parquet file cut short ({size} bytes): no PAR1 "
                               "marker at its end")
            if size <= SMALL:
                return _check(pa.BufferReader(f.read_at(size, 0)), fs, path, table)
            return _check(f, fs, path, table)
    except FileNotFoundError:
        raise
    except OSError as exc:
        return Verdict("damaged", f"cannot be read: {first_line(exc)}", lasting=False)


def _check(source: Any, fs: pafs.FileSystem, path: str, table: str) -> Verdict:
    try:
        pf = pq.ParquetFile(source, page_checksum_verification=True)
        schema = pf.schema_arrow
    except Exception as exc:  # ArrowInvalid, OSError: a footer that does not parse
        return Verdict("damaged", f"footer does not read: {first_line(exc)}")
    problem = schema_problem(table, schema)
    if problem:
        return Verdict("foreign", f"not llem's {table} schema: {problem}")
    try:
        for i in range(pf.num_row_groups):  # one row group in memory at a time
            pf.read_row_group(i, use_threads=False)
    except Exception as exc:  # a page whose CRC, compression or encoding does not hold
        sources: tuple[str, ...] = ()
        if is_compacted(path):
            sources = tuple(s.name for s in sources_of(fs, path) or [])
        return Verdict("damaged", f"data does not read: {first_line(exc)}", sources)
    return WHOLE


def skip_message(rel: str, verdict: Verdict, uri: str) -> str:
    """The one warning line of a file readers skip."""
    name = rel.rsplit("/", 1)[-1]
    if is_compacted(name):
        n = len(verdict.sources)
        what = f"; its {n} measurements are left out and run again on resume" if n else \
            "; the measurements it holds cannot be named (`llem run --rerun` measures the " \
            "campaign again)"
    else:
        what = "; its job and cycle are left out of every table and run again on resume" \
            if job_cycle(name) else ""
    return (f"skipped {rel}: {verdict.kind}, {verdict.detail}{what} (`llem doctor {uri}` "
            "lists every such file)")


def cache_dir() -> Path:
    return cache_root() / "store-checks"


@dataclass
class FileChecks:
    """The verdicts of one store's files, by path relative to the store root: a JSON file
    of them all, and a log beside it that writers append a line to per file they renamed
    into place (so a reader in another process, `llem query` beside a running campaign,
    reads none of them back); each read takes in the lines added since."""

    uri: str
    root: str
    local: bool
    entries: dict[str, list[Any]] = field(default_factory=dict)  # rel -> [*identity, kind,
    # detail, sources]
    written: int = 0
    loaded: bool = False
    dirty: bool = False
    changed: bool = False  # verdicts made here (not only records dropped): worth a save
    log_offset: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def file(self) -> Path:
        return cache_dir() / (hashlib.sha256(self.uri.encode()).hexdigest()[:24] + ".json")

    @property
    def log(self) -> Path:
        return self.file.with_suffix(".log")

    def _load(self) -> None:
        if not self.loaded:
            self.loaded = True
            try:
                data = json.loads(self.file.read_text())
                if data.get("version") == CHECK_VERSION and \
                        data.get("schemas") == _SCHEMAS and data.get("uri") == self.uri:
                    self.entries = {**data["files"], **self.entries}
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                pass
        self._tail()

    def _tail(self) -> None:
        """Take in the log's lines added since the last look."""
        try:
            with self.log.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                if size < self.log_offset:  # emptied by a save meanwhile
                    self.log_offset = 0
                if size == self.log_offset:
                    return
                f.seek(self.log_offset)
                data = f.read(size - self.log_offset)
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # a line being appended right now: next time
        self.log_offset += end
        for line in data[:end].splitlines():
            try:
                version, schemas, rel, *entry = json.loads(line)
            except (ValueError, TypeError):
                continue
            if version == CHECK_VERSION and schemas == _SCHEMAS:
                self.entries[rel] = entry

    def save(self, force: bool = False) -> None:
        """Write the verdicts (atomically) when new ones were made (force: also when only
        records of files gone were dropped), and empty the log they include; a cache that
        cannot be written is no error."""
        with self.lock:
            if not self.dirty or not (self.changed or force):
                return
            self.dirty = self.changed = False
            text = json.dumps({"version": CHECK_VERSION, "schemas": _SCHEMAS, "uri": self.uri,
                               "files": self.entries}, separators=(",", ":"))
            offset = self.log_offset
        path = self.file
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(text)
            os.replace(tmp, path)
            with contextlib.suppress(OSError):
                if self.log.stat().st_size == offset:  # a line added since stays
                    os.truncate(self.log, 0)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def identity(self, info: pafs.FileInfo) -> list[Any] | None:
        """size, mtime (ns), and locally ctime and inode; None for a file gone meanwhile."""
        if not self.local:
            return [info.size, info.mtime_ns]
        try:
            st = Path(info.path).stat()
        except OSError:
            return None
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]

    def rel(self, path: str) -> str:
        return path[len(self.root):].lstrip("/")

    def verdicts(self, fs: pafs.FileSystem, table: str, infos: Iterable[pafs.FileInfo],
                 prefix: str, fresh: bool = False) -> dict[str, Verdict]:
        """path -> Verdict for each file of `table` listed (infos: every file under the
        store-relative `prefix`; records of files gone from there are dropped). fresh:
        check every file again (the doctor)."""
        infos = list(infos)
        out: dict[str, Verdict] = {}
        todo: list[tuple[str, list[Any]]] = []
        with self.lock:
            self._load()
            seen = set()
            for info in infos:
                rel = self.rel(info.path)
                seen.add(rel)
                ident = self.identity(info)
                if ident is None:
                    continue
                entry = self.entries.get(rel)
                n = len(ident)
                if not fresh and entry is not None and entry[:n] == ident:
                    out[info.path] = Verdict(entry[n], entry[n + 1], tuple(entry[n + 2]))
                else:
                    todo.append((info.path, ident))
            gone = [r for r in self.entries if r.startswith(prefix) and r not in seen]
            for r in gone:
                del self.entries[r]
            self.dirty = self.dirty or bool(gone)

        def one(item: tuple[str, list[Any]]) -> tuple[str, list[Any], Verdict | None]:
            path, ident = item
            try:
                return path, ident, check_file(fs, path, table)
            except FileNotFoundError:
                return path, ident, None

        if len(todo) > 8:
            with ThreadPoolExecutor(THREADS) as pool:
                done = list(pool.map(one, todo))
        else:
            done = [one(t) for t in todo]
        with self.lock:
            for path, ident, verdict in done:
                if verdict is None:  # gone since listing (compaction deleted it)
                    continue
                out[path] = verdict
                if verdict.lasting:
                    self.entries[self.rel(path)] = [*ident, verdict.kind, verdict.detail,
                                                    list(verdict.sources)]
                    self.dirty = self.changed = True
        return out

    def recorded(self, path: str, verdict: Verdict = WHOLE) -> None:
        """Record a file's verdict without reading it, here and in the log: one llem just
        wrote (whole), or one a reader found damaged after all."""
        if not self.local:
            return
        try:
            st = Path(path).stat()
        except OSError:
            return
        rel = self.rel(path)
        entry = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, verdict.kind,
                 verdict.detail, list(verdict.sources)]
        with self.lock:
            if verdict.ok and self.written >= IN_MEMORY:
                return
            self.written += verdict.ok
            self.entries[rel] = entry
        line = json.dumps([CHECK_VERSION, _SCHEMAS, rel, *entry], separators=(",", ":"))
        try:  # one write of one line, appended: lines of several writers do not mix
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except FileNotFoundError:
            try:
                self.log.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError:
                return
        except OSError:
            return
        try:
            os.write(fd, (line + "\n").encode())
        except OSError:
            pass
        finally:
            os.close(fd)


_REGISTRY: dict[str, FileChecks] = {}
_REGISTRY_LOCK = threading.Lock()


def checks_for(uri: str, root: str, local: bool) -> FileChecks:
    """The process's verdicts of the store at uri (one object per store)."""
    with _REGISTRY_LOCK:
        if uri not in _REGISTRY:
            _REGISTRY[uri] = FileChecks(uri, root, local)
        return _REGISTRY[uri]
