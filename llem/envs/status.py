"""`llem env list GRID`: the environment each backend of a grid would run in, and whether
it is ready, as `llem run` would find it (the same checks as envs.preflight, reported per
backend instead of stopping at the first problem).
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

from llem.config.yaml_source import SourceMap
from llem.envs.environments import (
    EnvStatus,
    choice_for,
    driver_ray_version,
    fix_command,
    kind_for,
    missing_modules,
    python_fix,
    python_problem,
    requirement_lines,
    requirements_file,
    runtime_env,
    venv_status,
)
from llem.errors import UserError


def grid_statuses(backends: list[str], choices: dict[str, Any], deep: bool = True,
                  source: SourceMap | None = None) -> list[EnvStatus]:
    """One row per backend: its chosen kind, state and what would fix it (source: the
    grid's, so that a `python:` that does not work is named by its line)."""
    return [_one(b, choices, deep, source) for b in backends]


def _one(backend: str, choices: dict[str, Any], deep: bool,
         source: SourceMap | None) -> EnvStatus:
    choice = choice_for(backend, choices)
    kind = kind_for(backend, choice)
    if kind == "current":
        missing = missing_modules(backend)
        if missing:
            return EnvStatus(backend, kind, "missing", sys.executable,
                             f"lacks {', '.join(missing)}: run `{fix_command(backend, None)}`"
                             " and choose kind venv")
        return EnvStatus(backend, kind, "ready", sys.executable, "driver's Python")
    if kind == "venv":
        problem = None if choice.python else python_problem(backend)
        if problem:
            return EnvStatus(backend, kind, "unsupported", "-", problem)
        st = venv_status(backend, choice.variant, choice.python, deep=deep)
        if st.state == "ready":
            return st
        if not choice.python:
            return EnvStatus(backend, kind, st.state, st.where,
                             f"{st.detail}: run `{fix_command(backend, choice.variant)}`")
        detail = f"{st.detail}; {python_fix(backend)}"
        if source:
            detail = str(source.error(("environments", backend, "python"), detail))
        return EnvStatus(backend, kind, st.state, st.where, detail)
    try:
        renv = runtime_env(backend, choice)
    except UserError as exc:
        return EnvStatus(backend, kind, "broken", "-", str(exc))
    if kind == "image":
        podman = "" if shutil.which("podman") else " (podman is not on this machine's PATH)"
        return EnvStatus(backend, kind, "on demand", renv["image_uri"],
                         f"pulled and run by Ray with podman on each node when a worker "
                         f"starts{podman}; the image needs {backend}, llem and ray "
                         f"{driver_ray_version()}")
    packages = choice.packages
    if packages is None:
        packages = requirement_lines(requirements_file(backend, choice.variant)[1])
    return EnvStatus(backend, kind, "on demand", f"Ray runtime_env {kind}",
                     f"installed by Ray on each node when a worker starts: "
                     f"{', '.join(packages)}")
