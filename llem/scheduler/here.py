"""Whether this machine can run a campaign itself, checked before an embedded Ray starts.

With no cluster given (no --address, no RAY_ADDRESS) Ray starts on this machine, so its GPUs
(NVML) and CPUs are all a job can get: a GPU job on a login node would otherwise cost a Ray
start before the driver refuses it. The check is the driver's own (placement.never_placed)
on this machine's resources; a joined cluster is checked by the driver against its nodes.
"""

from __future__ import annotations

import os

import ray

from llem.config.grid import groups
from llem.config.loaded import Loaded
from llem.scheduler.placement import Need, never_placed
from llem.scheduler.plan import local_nodes


def refuse_here(loaded: Loaded, address: str | None) -> None:
    """Raise a ConfigError (one line: the grid's file and line, what this machine has, how
    to fix it) for the first load group this machine can never run; nothing when a cluster
    is given or Ray already runs in this process (its resources are what counts then)."""
    if address or os.environ.get("RAY_ADDRESS") or ray.is_initialized():
        return
    (node,), _ = local_nodes()
    for g in groups(loaded):
        r = g.first.resources
        why = never_placed(Need.of(r), [node.view()])
        if why is None:
            continue
        why = why.replace("the cluster has", "this machine has").replace(
            "the largest node has", "this machine has")
        key = "resources." + ("gpus_per_job" if r.gpus_per_job else
                              "accelerator_type" if "accelerator_type" in why else
                              "cpus_per_job" if " CPUs;" in why else "custom")
        fix = ("set resources.gpus_per_job: 0 to run on the CPU, or give --address (or "
               "RAY_ADDRESS) of a Ray cluster with GPUs" if r.gpus_per_job else
               f"{'lower' if key.endswith('cpus_per_job') else 'remove'} it, or give "
               "--address (or RAY_ADDRESS) of a Ray cluster that has it")
        have = f"{node.gpus} GPU{'' if node.gpus == 1 else 's'}, {node.cpus:g} CPUs"
        raise loaded.source.error(
            loaded.where.get(key, tuple(key.split("."))),
            f"jobs of {g.first.model} ({g.first.backend}) cannot run on this machine ({have}, "
            f"no Ray cluster given): {why}", fix)
