"""The Ray actor: a JobRunner in its own process, pinned to its GPUs, named for the dashboard."""

from __future__ import annotations

import os
import re
from typing import Any

import ray

from llem.grid import Group
from llem.harness import JobRunner
from llem.measure.gpu import WORKER_ENV

NAMESPACE = "llem"


class WorkerActor(JobRunner):
    """JobRunner plus what only Ray knows (node id)."""

    def __init__(self, backend: str, load: dict[str, Any], gpus_per_job: int) -> None:
        node = ray.get_runtime_context().get_node_id()
        super().__init__(backend, load, gpus_per_job, {"node_id": node})

    def ready(self) -> dict[str, Any]:
        return {"node_id": self.env["node_id"], "pid": os.getpid(),
                "gpus": self.meter.gpu_info()}

    def stats(self) -> dict[str, Any]:
        return {"model_loads": self.loads, "jobs_run": self.jobs_run}


def actor_name(campaign: str, group: Group, index: int) -> str:
    """What the dashboard shows: campaign, backend, model, load key."""
    model = re.sub(r"[^A-Za-z0-9_.-]+", "_", group.first.model.rsplit("/", 1)[-1])[:40]
    return f"{campaign}/{group.first.backend}/{model}/{group.load_key}-{index}"


def start_worker(campaign: str, group: Group, index: int,
                 runtime_env: dict[str, Any] | None = None) -> Any:
    """Create the group's actor: num_gpus = GPUs per job, exclusive; CPU jobs take CPUs."""
    p = group.first
    r = p.resources
    env_vars = {**WORKER_ENV}
    if "LLEM_CACHE" in os.environ:
        env_vars["LLEM_CACHE"] = os.environ["LLEM_CACHE"]
    renv = dict(runtime_env or {})
    renv["env_vars"] = {**env_vars, **renv.get("env_vars", {})}
    options: dict[str, Any] = {
        "name": actor_name(campaign, group, index), "namespace": NAMESPACE,
        "num_gpus": r.gpus_per_job,
        # A GPU actor reserves its GPUs, not a core (num_gpus alone also takes a CPU).
        "num_cpus": r.cpus_per_job if r.gpus_per_job == 0 else 0,
        "resources": dict(r.custom), "runtime_env": renv, "lifetime": None,
        "max_concurrency": 1,
    }
    if r.accelerator_type:
        options["accelerator_type"] = r.accelerator_type
    load = {"model": p.model, "dtype": p.dtype, "engine": dict(p.engine),
            "gpus": r.gpus_per_job}
    cls = ray.remote(WorkerActor)
    return cls.options(**options).remote(p.backend, load, r.gpus_per_job)
