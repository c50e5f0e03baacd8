"""Files written whole or not at all: a temp file beside the target, renamed into place."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llem.errors import UserError


def check_folder(path: Path, option: str) -> Path:
    """The existing folder that will hold `path`, or a UserError naming the option."""
    folder = path.resolve().parent
    if not folder.is_dir():
        raise UserError(f"{option} {path}: folder {folder} does not exist (create it first)")
    return folder


@contextmanager
def atomic_file(dest: Path) -> Iterator[str]:
    """Yields a temp path beside `dest`; on success it becomes `dest` (with the umask's
    permissions), on any error it is removed and `dest` is untouched."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.resolve().parent)
    os.close(fd)
    try:
        yield tmp
        mask = os.umask(0)
        os.umask(mask)
        Path(tmp).chmod(0o666 & ~mask)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
