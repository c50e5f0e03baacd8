"""Where llem keeps what it builds on a machine, one rule for every layer: the cache root
(built-in models, engine caches, store-check caches, server logs) and the backend venvs.

$LLEM_CACHE (and $LLEM_ENVS_DIR for venvs) win; else the XDG cache folder
($XDG_CACHE_HOME, default ~/.cache) under llem/. Venvs do not follow $LLEM_CACHE, so a test
or a run with a scratch cache still finds the venvs built once per machine.
"""

from __future__ import annotations

import os
from pathlib import Path


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
