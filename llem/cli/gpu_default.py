"""`resources.gpus_per_job` when a grid does not set it: follow the cluster.

A vLLM or TensorRT-LLM grid written without `resources:` would otherwise run on the CPU (or
dry-run as "every job can be placed" while no job would use a GPU). So where the cluster
has GPUs, a grid that leaves it unset gets 1 GPU per job for backends that load a model;
where it has none, the CPU (0, the model's default). The choice is said in one line by
`llem run` and its dry run, and each row records its gpus_per_job.
"""

from __future__ import annotations

from llem.backends import get_info
from llem.config.loaded import Loaded
from llem.measure.gpu import local_gpus

KEY = "resources.gpus_per_job"


def grid_sets_gpus(loaded: Loaded) -> bool:
    return KEY in loaded.fixed or any(KEY in alt for ax in loaded.axes
                                      for alt in ax.alternatives)


def cluster_gpus(address: str | None) -> int:
    """GPUs of the cluster a run would use: this machine's (NVML), or the cluster's."""
    if not address:
        return len(local_gpus()[0])
    from llem.scheduler.cluster import describe  # Ray: only when a cluster is named

    return int(describe(address)["gpus"])


def default_gpus(loaded: Loaded, address: str | None) -> tuple[int | None, str | None]:
    """(gpus_per_job to lay over the grid, or None to leave it; the line that says so)."""
    if grid_sets_gpus(loaded):
        return None, None
    infos = [get_info(b) for b in loaded.campaign.backends]
    if not any(i.needs_model and i.package for i in infos):
        return None, None  # noop, endpoint: nothing of theirs runs on a GPU here
    gpus = cluster_gpus(address)
    if gpus:
        return 1, (f"resources.gpus_per_job is not set: 1 GPU per job (the cluster has "
                   f"{gpus} GPU{'' if gpus == 1 else 's'})")
    return None, "resources.gpus_per_job is not set: jobs run on the CPU (no GPU found)"
