"""The Ray actor: a JobRunner in its own process, pinned to its GPUs, named for the dashboard."""

from __future__ import annotations

import os
import re
from typing import Any

import ray

from llem.backends import server_of
from llem.config.grid import Group
from llem.config.job import Job
from llem.credentials import collect, install, remember
from llem.harness.runner import JobRunner, load_of
from llem.harness.server.served import LOG_DIR_ENV
from llem.measure.gpu import WORKER_ENV, visible_devices
from llem.scheduler.cluster import NAMESPACE


class WorkerActor(JobRunner):
    """JobRunner plus what only Ray knows (node id)."""

    def __init__(self, backend: str, load: dict[str, Any], gpus_per_job: int,
                 env: dict[str, str] | None = None,
                 credentials: dict[str, str] | None = None) -> None:
        os.environ.update(env or {})  # before any backend library is imported
        install(credentials or {})  # HF_TOKEN etc. for the backend's libraries, masked
        node = ray.get_runtime_context().get_node_id()
        super().__init__(backend, load, gpus_per_job, {"node_id": node})

    def ready(self) -> dict[str, Any]:
        return {"node_id": self.env["node_id"], "pid": os.getpid(),
                "gpus": self.meter.gpu_info(), "visible_devices": visible_devices()}

    def __repr__(self) -> str:
        """The name the dashboard's actor table and log prefixes show: what runs where."""
        model = self.load["model"].rsplit("/", 1)[-1][:40]
        gpus = visible_devices() if self.gpus_per_job else None
        return (f"llem:{self.backend_name}:{model}:gpu={gpus or 'none'}:"
                f"node={self.env['node_id'][:8]}")

    def stats(self) -> dict[str, Any]:
        return {"model_loads": self.loads, "jobs_run": self.jobs_run}


_REMOTE: Any = None  # the Ray actor class of WorkerActor, made on first use


def _short(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model.rsplit("/", 1)[-1])[:40]


def actor_name(campaign: str, group: Group, index: int) -> str:
    """The actor's name in the dashboard: campaign, backend, worker number. Not the model: a
    reused worker serves several load groups in turn; each call is named (call_name)."""
    return f"{campaign}/{group.first.backend}/worker-{index}"


def call_name(job: Job) -> str:
    """A call's name in the dashboard's task list: backend, model, job id and cycle."""
    p = job.point
    return f"{p.backend}/{_short(p.model)}/{job.job_id}-c{job.cycle}"


def start_worker(campaign: str, group: Group, index: int,
                 runtime_env: dict[str, Any] | None = None, strategy: Any = None,
                 max_restarts: int = 0) -> Any:
    """Create the group's actor: num_gpus = GPUs per job, exclusive; CPU jobs take CPUs.

    A job of n GPUs is one actor with num_gpus=n, so its GPUs are on one node. strategy
    (the driver's node choice) and max_restarts (Ray restarts a dead worker process, the
    driver resends its calls) come from the driver.
    """
    p = group.first
    r = p.resources
    env_vars = {**WORKER_ENV}
    for name in ("LLEM_CACHE", LOG_DIR_ENV):  # the built-in models; server logs
        if name in os.environ:
            env_vars[name] = os.environ[name]
    renv = dict(runtime_env or {})
    env_vars.update(renv.pop("env_vars", {}))
    if renv:  # its own Python (venv, pip, image): Ray sets the variables at process start
        renv["env_vars"] = env_vars
    # else the driver's Python: the actor sets them itself (before any backend import), so
    # Ray can hand it a prestarted worker process instead of starting one (seconds each)
    options: dict[str, Any] = {
        "name": actor_name(campaign, group, index), "namespace": NAMESPACE,
        "num_gpus": r.gpus_per_job,
        # A GPU actor reserves its GPUs, not a core (num_gpus alone also takes a CPU).
        "num_cpus": r.cpus_per_job if r.gpus_per_job == 0 else 0,
        "resources": dict(r.custom), "lifetime": None,
        "max_concurrency": 1, "max_restarts": max_restarts, "max_task_retries": 0,
    }
    if renv:
        options["runtime_env"] = renv
    if strategy is not None:
        options["scheduling_strategy"] = strategy
    if r.accelerator_type:
        options["accelerator_type"] = r.accelerator_type
    global _REMOTE
    if _REMOTE is None:  # once: each ray.remote() exports the class again (~30 ms)
        _REMOTE = ray.remote(WorkerActor)
    cls = _REMOTE
    # credentials travel as an argument, never in runtime_env (Ray logs and shows that)
    creds = collect()
    wanted = getattr(server_of(p.backend), "credential_env", None)
    for name in wanted(p.engine) if wanted else []:  # an endpoint's key, by its variable
        if os.environ.get(name):
            creds[name] = os.environ[name]
            remember([creds[name]])
    return cls.options(**options).remote(p.backend, load_of(p), r.gpus_per_job, env_vars,
                                         creds)
