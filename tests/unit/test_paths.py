"""One rule for where llem keeps what it builds (llem.paths): overrides win, empty ones do
not count, XDG is honoured, and venvs do not follow a scratch $LLEM_CACHE."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem.paths import cache_root, envs_root


def test_overrides_then_xdg_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("LLEM_CACHE", "LLEM_ENVS_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "llem"
    assert envs_root() == tmp_path / "home" / ".cache" / "llem" / "envs"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "llem"
    monkeypatch.setenv("LLEM_CACHE", "")  # set but empty: not the working folder
    assert cache_root() == tmp_path / "xdg" / "llem"
    monkeypatch.setenv("LLEM_CACHE", str(tmp_path / "scratch"))
    assert cache_root() == tmp_path / "scratch"
    assert envs_root() == tmp_path / "xdg" / "llem" / "envs"  # venvs built once per machine
    monkeypatch.setenv("LLEM_ENVS_DIR", "~/venvs")
    assert envs_root() == tmp_path / "home" / "venvs"
