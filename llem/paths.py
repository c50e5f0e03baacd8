"""Where llem keeps what it builds on a machine, one rule for every layer: the cache root
(built-in models, engine caches, store-check caches, server logs) and the backend venvs.

$LLEM_CACHE (and $LLEM_ENVS_DIR for venvs) win; else the XDG cache folder
($XDG_CACHE_HOME, default ~/.cache) under llem/. Venvs do not follow $LLEM_CACHE, so a test
or a run with a scratch cache still finds the venvs built once per machine.
"""

from __future__ import annotations

import os
from pathlib import Path

from llem.errors import UserError


def _xdg_llem() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "llem"


def cache_root() -> Path:
    """$LLEM_CACHE, else $XDG_CACHE_HOME/llem, else ~/.cache/llem."""
    override = os.environ.get("LLEM_CACHE")
    return Path(override).expanduser() if override else _xdg_llem()


def envs_root() -> Path:
    """$LLEM_ENVS_DIR, else $XDG_CACHE_HOME/llem/envs, else ~/.cache/llem/envs."""
    override = os.environ.get("LLEM_ENVS_DIR")
    return Path(override).expanduser() if override else _xdg_llem() / "envs"


# Variables that name a folder llem writes into (caches, venvs, server logs), and the one it
# reads backend environment files from. The first is what `unset` gives instead.
FOLDER_VARS = {"LLEM_CACHE": "~/.cache/llem", "LLEM_ENVS_DIR": "~/.cache/llem/envs",
               "LLEM_LOG_DIR": "the store's logs/ folder", "XDG_CACHE_HOME": "~/.cache"}
READ_VARS = {"LLEM_JOBS_DIR": "the jobs/ folder beside llem"}


def folder_problem(path: Path, write: bool = True) -> str | None:
    """Why path cannot be the folder llem wants there (None: it can): a file, under a file,
    or (write) a folder, or the nearest folder that exists above it, not writable."""
    try:
        path = path.expanduser()
    except RuntimeError as exc:  # ~nosuchuser
        return f"cannot resolve it ({exc})"
    probe = path
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        probe = probe.parent
    if probe.is_symlink() and not probe.exists():
        return f"{probe} is a dangling link"
    if not probe.is_dir():
        where = "is" if probe == path else f"is under {probe}, which is"
        return f"{where} a file, not a folder"
    if probe != path and not write:
        return "does not exist"
    if write and not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == path else f" ({probe}, where it would be made)"
        return f"is not writable{where}"
    return None


def check_roots(environ: dict[str, str] | None = None) -> None:
    """Every llem folder variable that is set names a folder llem can use (FOLDER_VARS:
    one it can write or make; READ_VARS: one that exists), before anything starts: a file
    there failed the job late in the worker. A relative one is made absolute in environ
    (a worker, in Ray's folder, built the models again under its own working folder)."""
    env = os.environ if environ is None else environ
    for name, default in [*FOLDER_VARS.items(), *READ_VARS.items()]:
        value = env.get(name)
        if not value:
            continue
        if not value.startswith(("/", "~")):  # workers run in another folder: a relative
            value = env[name] = str(Path(value).absolute())  # one was another cache there
        why = folder_problem(Path(value), write=name in FOLDER_VARS)
        if why:
            raise UserError(f"{name}={value} {why}: point it at a folder llem can "
                            f"{'write' if name in FOLDER_VARS else 'read'}, or unset it "
                            f"(default: {default})")
