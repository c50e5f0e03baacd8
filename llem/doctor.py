"""`llem doctor`: what this machine (and the cluster, given an address) offers llem, each
missing piece with the command or setting that fixes it.

Every check is a Check row: an area (gpu, energy, backend, ray), what was looked at, a state
(ok, warn: llem works without it but measures less; fail: llem cannot run as configured;
info), what was found and the fix. The GPU rows are built from plain data (gpu_checks) so
they are tested against a described H100 on a machine without one.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any, Literal

from llem.backends import REGISTRY
from llem.envs.environments import (
    driver_ray_version,
    fix_command,
    job_env,
    python_problem,
    statuses,
)
from llem.harness.runtime import version
from llem.measure.gpu import local_gpus, system_info
from llem.measure.rapl import domains

State = Literal["ok", "warn", "fail", "info"]


@dataclass(frozen=True)
class Check:
    area: str
    item: str
    state: State
    detail: str
    fix: str = ""

    def row(self) -> dict[str, str]:
        return asdict(self)


CPU_JOBS = "without a GPU, jobs run on the CPU (resources.gpus_per_job: 0)"


def nvml_fix() -> str:
    """How to get NVML: the driver, and nvidia-ml-py only where it is not installed."""
    if importlib.util.find_spec("pynvml") is not None:
        return f"install the NVIDIA driver (it provides libnvidia-ml); {CPU_JOBS}"
    return f"install the NVIDIA driver and nvidia-ml-py (pip install nvidia-ml-py); {CPU_JOBS}"


def gpu_checks(gpus: list[dict[str, Any]], reason: str | None,
               system: dict[str, Any]) -> list[Check]:
    """One row per GPU (name, memory, MIG, energy counter) plus driver/CUDA versions."""
    if not gpus:
        why = reason or "NVML reports no GPU"
        return [Check("gpu", "GPUs", "warn", f"no NVIDIA GPU visible ({why})", nvml_fix())]
    out = [Check("gpu", "driver", "ok", f"NVIDIA driver {system.get('driver_version', '?')}, "
                 f"CUDA {system.get('cuda_version') or '?'}")]
    for g in gpus:
        mem = g.get("memory_total_mib")
        mem_s = f"{mem / 1024:.1f} GiB" if mem else "memory ?"
        limit = f", power limit {g['power_limit_w']:.0f} W" if g.get("power_limit_w") else ""
        detail = f"{g.get('name')}, {mem_s}{limit}, {g.get('uuid')}"
        if g.get("mig_mode"):
            out.append(Check("gpu", f"GPU {g.get('index')}", "warn", detail + ", MIG on",
                             "MIG instances share one energy counter: measure on a GPU with MIG "
                             "off (sudo nvidia-smi -i N -mig 0) or read the whole GPU's energy"))
        else:
            out.append(Check("gpu", f"GPU {g.get('index')}", "ok", detail + ", MIG off"))
    if reason:  # some GPUs answered, then a query failed
        out.append(Check("gpu", "NVML", "fail", reason, "check `nvidia-smi`; the driver may "
                         "need a reset or the GPU fell off the bus"))
    return out


CUDA_TORCH = 'make install TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu128"'


def torch_checks(torch_version: str | None, have_gpus: bool) -> list[Check]:
    """Is the driver's torch able to use the GPUs? Read from its version (a +cpu local
    version is a CPU-only build), without importing torch."""
    if torch_version is None:
        return [Check("gpu", "torch", "warn", "not installed (the transformers backend needs "
                      "it)", "pip install 'llem[transformers]'")]
    cpu_build = torch_version.endswith("+cpu")
    if have_gpus and cpu_build:
        return [Check("gpu", "torch", "fail", f"torch {torch_version} is a CPU-only build; "
                      "GPU jobs would run on the CPU", CUDA_TORCH)]
    kind = "CPU-only build" if cpu_build else "ROCm build" if "+rocm" in torch_version else \
        "CUDA build"  # PyPI's Linux wheels carry no local version and are CUDA builds
    return [Check("gpu", "torch", "ok", f"torch {torch_version} ({kind})")]


def energy_checks(gpus: list[dict[str, Any]], rapl_reason: str | None,
                  rapl_zones: list[str]) -> list[Check]:
    """The energy sources llem reads (NVML counter, RAPL) and codecarbon's presence."""
    out = []
    counting = [g for g in gpus if g.get("energy_counter")]
    if counting:
        out.append(Check("energy", "NVML energy counter", "ok",
                         f"answers on {len(counting)} of {_count(len(gpus), 'GPU')}"))
    elif gpus:
        out.append(Check("energy", "NVML energy counter", "warn",
                         "no GPU answers nvmlDeviceGetTotalEnergyConsumption (pre-Volta GPU "
                         "or a MIG instance); energy is integrated from sampled power",
                         "measure on a Volta or newer GPU with MIG off"))
    else:
        out.append(Check("energy", "NVML energy counter", "warn", "no GPU", nvml_fix()))
    if rapl_zones:
        out.append(Check("energy", "RAPL (CPU, DRAM)", "ok", ", ".join(rapl_zones)))
    else:
        out.append(Check("energy", "RAPL (CPU, DRAM)", "warn", rapl_reason or "not readable",
                         "on Intel/AMD Linux hosts: sudo chmod a+r "
                         "/sys/class/powercap/intel-rapl:*/energy_uj (root-only since "
                         "CVE-2020-8694)"))
    cc = _version("codecarbon")
    out.append(Check("energy", "codecarbon", "info",
                     f"codecarbon {cc} installed; llem reads NVML and RAPL itself" if cc else
                     "not installed; llem does not need it (it reads NVML and RAPL itself)"))
    return out


def backend_checks(deep: bool = True) -> list[Check]:
    """Each backend's environment (llem.envs), with the command that builds it."""
    out = []
    for st in statuses(sorted(REGISTRY), deep=deep):
        ready = st.state == "ready"
        default = job_env(st.backend).default == st.kind
        fix = ""
        if st.state == "unsupported":  # no venv under this Python: building one would fail
            fix = python_problem(st.backend) or ""
        elif not ready:
            build = fix_command(st.backend, None)
            fix = build if st.kind == "venv" else \
                f"pip install 'llem[{st.backend}]' (or use its venv: {build})"
        state: State = "ok" if ready else ("fail" if st.state == "broken" else
                                           "warn" if default else "info")
        item = f"{st.backend} ({st.kind}{', default' if default else ''})"
        out.append(Check("backend", item, state, f"{st.state}: {st.detail or st.where}", fix))
    return out


def ray_checks(address: str | None) -> list[Check]:
    """Ray's version here and, with an address (or RAY_ADDRESS), what the cluster reports."""
    version = driver_ray_version()
    if version is None:
        return [Check("ray", "ray", "fail", "not installed", "pip install 'ray[default]'")]
    out = [Check("ray", "ray", "ok", f"ray {version} (Python {sys.version.split()[0]})")]
    target = address or os.environ.get("RAY_ADDRESS")
    if not target:
        out.append(Check("ray", "address", "info", "none set: `llem run` starts an embedded "
                         "local Ray on this machine", "to use a cluster: --address or "
                         "RAY_ADDRESS=host:6379 (llem submit takes http://head:8265)"))
        return out
    from llem.scheduler.cluster import describe

    try:
        info = describe(target)
    except Exception as exc:
        return out + [Check("ray", f"cluster {target}", "fail",
                            f"cannot connect: {type(exc).__name__}: "
                            f"{(str(exc).splitlines() or [''])[0][:200]}",
                            "start it (ray start --head) or fix the address")]
    out.append(Check("ray", f"cluster {target}", "ok",
                     f"ray {info['ray_version']}, {_count(len(info['nodes']), 'node')}, "
                     f"{_count(info['gpus'], 'GPU')}, "
                     f"{_count(info['cpus'], 'CPU')}"))
    if info["ray_version"] != version:
        out.append(Check("ray", "versions", "fail", f"cluster runs ray {info['ray_version']}, "
                         f"this Python has {version}", f"pip install ray=={info['ray_version']}"))
    for n in info["nodes"]:
        kinds = ", ".join(sorted({g.get("name") or "?" for g in n["gpu_info"]})) or \
            (n["accelerator"] or "")
        out.append(Check("ray", f"node {n['ip']}", "ok" if n["alive"] else "warn",
                         f"{_count(n['gpus'], 'GPU')} {kinds}".strip()
                         + f", {_count(n['cpus'], 'CPU')}"))
    return out


def machine_checks(address: str | None = None, deep: bool = True) -> list[Check]:
    """Everything `llem doctor` reports, in the order it prints them."""
    gpus, reason = local_gpus()
    zones, rapl_reason = domains()
    return [*gpu_checks(gpus, reason, system_info()),
            *torch_checks(_version("torch"), bool(gpus)),
            *energy_checks(gpus, rapl_reason, [z.name for z in zones]),
            *backend_checks(deep), *ray_checks(address)]


def _count(n: float, word: str) -> str:
    """'1 GPU', '2 GPUs', '0 GPUs' (a count in a check's text)."""
    return f"{n:g} {word}{'' if n == 1 else 's'}"


def _version(package: str) -> str | None:
    return version(package)
