"""What the benchmarks share: a local Ray with declared GPUs, started once or reused."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def local_ray(num_gpus: int = 4, num_cpus: int = 2) -> Iterator[None]:
    """A running Ray with at least num_gpus declared GPUs (this machine has none).

    A Ray already running in this process (the fast test's) is used as it is and left up;
    otherwise llem's own connect() starts an embedded one, shut down on exit.
    """
    import ray

    from llem.driver import connect

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) >= num_gpus:
        yield
        return
    if ray.is_initialized():
        ray.shutdown()
    connect(None, num_cpus=num_cpus, num_gpus=num_gpus)
    try:
        yield
    finally:
        ray.shutdown()


def ray_address() -> str | None:
    """The address of the Ray this process is connected to, for a child process to join."""
    import ray

    return ray.get_runtime_context().gcs_address if ray.is_initialized() else None
