"""Can results be written to a store (Store.check_writable), before Ray starts: a folder,
or one that can be made; no file where llem writes a folder; a probe file created and
removed in .staging and in each folder a result is renamed into; an object store that
answers. Each refusal is one StoreError line. Nothing is left behind."""

from __future__ import annotations

import contextlib
import stat
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pyarrow.fs as pafs

from llem.credentials import BARE_USERINFO, mask_shapes
from llem.errors import one_line
from llem.store.checks import first_line
from llem.store.schema import TABLES, StoreError


def check_root_text(text: str) -> None:
    """A store path or URI as written (--store bypasses the grid's own check of store:)."""
    if not text.strip():
        raise StoreError("the store is an empty path: give a folder or a URI")
    if text != text.strip():  # as the grid's store: refuses
        raise StoreError(f"store '{mask_shapes(one_line(text))}' has spaces around it: give "
                         "the folder or URI without them")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise StoreError(f"store '{mask_shapes(one_line(text))}' holds a control character: "
                         "give a folder or a URI")
    if "://" not in text and BARE_USERINFO.match(text):  # made a folder named user:pw@host
        raise StoreError(f"store '{mask_shapes(text)}' is a URL with a password but no "
                         "scheme: give s3://bucket/path (credentials from the environment) "
                         "or a folder")


class Store(Protocol):
    """What these checks read of a llem.store.store.Store (which calls them)."""

    root: str
    uri: str
    fs: Any
    local: bool

    def path(self, *parts: str) -> str: ...


def _folders(campaign: str | None) -> list[str]:
    """Folders llem writes in, relative to the root, outermost first."""
    out = [".staging"]
    for table in TABLES:
        out.append(table)
        if campaign is not None:
            out.append(f"{table}/campaign={campaign}")
    return out

PSEUDO = (Path("/proc"), Path("/sys"), Path("/dev"))  # kernel and device folders
SCRATCH = (Path("/dev/shm"),)  # a tmpfs: results may go there


def check_local(store: Store, campaign: str | None) -> None:
    root = Path(store.root)
    missing: list[Path] = []
    here = root
    while True:
        try:
            st = here.stat()
            break
        except (FileNotFoundError, NotADirectoryError):  # the parent tells
            _dangling(here, store.uri, str(here))
            missing.append(here)
            here = here.parent
        except OSError as exc:
            raise StoreError(f"store {store.uri} cannot be reached: {exc.strerror} "
                             f"({here})") from None
    if not stat.S_ISDIR(st.st_mode):
        what = _kind(st.st_mode)
        if here == root:
            raise StoreError(f"store {store.uri} is {what}, not a folder: give a folder "
                             "(--store, or the grid's store:)")
        raise StoreError(f"store {store.uri} cannot be created: {here} is {what}, not a "
                         "folder")
    if any(root == p or p in root.parents for p in PSEUDO) and \
            not any(root == s or s in root.parents for s in SCRATCH):
        # as root, --store /dev made runs/, sessions/ ... among the devices
        raise StoreError(f"store {store.uri} is in a kernel or device folder: give a folder "
                         "of your own (--store, or the grid's store:)")
    targets = [here] if missing else []
    if not missing:
        for rel in _folders(campaign):
            p = root / rel
            try:
                st = p.stat()
            except FileNotFoundError:
                _dangling(p, store.uri, rel)
                continue
            except OSError as exc:
                raise StoreError(f"store {store.uri}: {rel} cannot be reached: "
                                 f"{exc.strerror}") from None
            if not stat.S_ISDIR(st.st_mode):
                raise StoreError(f"store {store.uri}: {rel} is {_kind(st.st_mode)} where "
                                 "llem writes a folder: move it away (`llem doctor "
                                 "STORE` lists what does not belong)")
        # where each file lands: its folder, or the nearest one there to make it in
        for rel in _folders(campaign):
            p = root / rel
            while not p.is_dir():
                p = p.parent
            if p not in targets:
                targets.append(p)
    created: list[Path] = []
    probe_dir = root / ".staging"
    try:
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
        if not probe_dir.is_dir():
            probe_dir.mkdir()
            created.append(probe_dir)
        for d in [probe_dir, *targets]:
            probe = d / f".llem-probe-{uuid.uuid4().hex[:8]}.tmp"
            with probe.open("xb") as f:
                f.write(b"llem")
            probe.unlink()
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise StoreError(f"store {store.uri} is not writable: "
                         f"{exc.strerror or first_line(exc)}{where}") from None
    finally:
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()

REMOTE_TIMEOUT_S = 30.0  # an object store that has not answered by then is not reachable


def _bounded(fn: Callable[[], Any], uri: str) -> Any:
    """fn's result, or a StoreError once it has run REMOTE_TIMEOUT_S: a filesystem client
    that waits for an unreachable endpoint (GCS asks a metadata server, with retries, for
    minutes) must not hang the run. The waiting thread is a daemon: it dies with us."""
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    worker = threading.Thread(target=call, name="llem-store-probe", daemon=True)
    worker.start()
    worker.join(REMOTE_TIMEOUT_S)
    if worker.is_alive():
        raise StoreError(f"store {uri} did not answer within {REMOTE_TIMEOUT_S:.0f} s: check "
                         "its address, the network and the credentials")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def find_store(store: Store) -> bool:
    """Is there a store at the root: a folder holding one of the tables' folders. A remote
    root that does not answer is a StoreError saying so (readers said "no store there",
    and a gs:// root without credentials or network took GCS's 15 minutes of retries)."""
    def look() -> bool:
        if store.fs.get_file_info(store.root).type != pafs.FileType.Directory:
            return False
        return any(i.type == pafs.FileType.Directory
                   for i in store.fs.get_file_info([store.path(t) for t in TABLES]))

    if store.local:
        try:
            return look()
        except OSError:
            return False
    try:
        return bool(_bounded(look, store.uri))
    except OSError as exc:
        raise StoreError(f"store {store.uri} cannot be reached: {first_line(exc)}") from None


def check_remote(store: Store) -> None:
    try:
        info = _bounded(lambda: store.fs.get_file_info(store.root), store.uri)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"store {store.uri} cannot be reached: {first_line(exc)}") from None
    if info.type == pafs.FileType.File:
        raise StoreError(f"store {store.uri} is a file, not a folder")
    probe = store.path(".staging", f"llem-probe-{uuid.uuid4().hex[:8]}.tmp")

    def write_probe() -> None:
        with store.fs.open_output_stream(probe) as out:
            out.write(b"llem")
        store.fs.delete_file(probe)

    try:
        _bounded(write_probe, store.uri)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"store {store.uri} is not writable: {first_line(exc)}") from None


def _dangling(path: Path, uri: str, rel: str) -> None:
    """A link to nothing where llem makes a folder: mkdir would fail on it once jobs ran."""
    if path.is_symlink():
        raise StoreError(f"store {uri}: {rel} is a link to {path.readlink()}, which does "
                         "not exist: make its target, or remove the link")


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a folder"
