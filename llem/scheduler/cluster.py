"""What a Ray cluster reports about itself, for `llem doctor --address` and dry runs.

Ray's resources say how many GPUs a node has and their accelerator type, not their memory;
a zero-CPU probe task pinned to each GPU node asks NVML there (llem.measure.gpu.local_gpus),
so a dry run can compare each job's memory estimate with the GPUs it would really get.
A node whose probe fails is still listed, with its Ray-reported GPU count and no details.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from llem.envs.environments import llem_source_dir
from llem.measure.gpu import local_gpus

PROBE_TIMEOUT_S = 60.0
NAMESPACE = "llem"  # llem's actors live in this Ray namespace


def _probe() -> list[dict[str, Any]]:
    return local_gpus()[0]


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Raise ConnectionError when nothing listens at host:port (ray.init would retry for
    minutes); 'auto' and addresses without a port are left to Ray."""
    hostport = address.split("://", 1)[-1].rstrip("/").rpartition("@")[2]  # no user:pw@
    host, _, port = hostport.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [::1]:6379: socket wants ::1
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {host}:{port} ({exc.strerror or exc})") \
            from None


def describe(address: str) -> dict[str, Any]:
    """{ray_version, gpus, cpus, nodes: [{node_id, ip, alive, gpus, cpus, accelerator,
    gpu_info: [local_gpus() rows]}]} of the cluster at address (disconnects afterwards
    when it connected)."""
    started = not ray.is_initialized()
    if started:
        check_reachable(address)
        ray.init(address=address, namespace="llem", logging_level=logging.ERROR,
                 log_to_driver=False)
    try:
        nodes = []
        probe = ray.remote(num_cpus=0)(_probe)
        pending: dict[Any, dict[str, Any]] = {}
        for n in ray.nodes():
            res = n.get("Resources", {})
            accel = next((k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")),
                         None)
            node = {"node_id": n["NodeID"], "ip": n.get("NodeManagerAddress", "?"),
                    "alive": bool(n.get("Alive")), "gpus": float(res.get("GPU", 0)),
                    "cpus": float(res.get("CPU", 0)), "accelerator": accel, "gpu_info": [],
                    "resources": dict(res)}
            nodes.append(node)
            if node["alive"] and node["gpus"] > 0:
                strategy = NodeAffinitySchedulingStrategy(node_id=n["NodeID"], soft=False)
                pending[probe.options(scheduling_strategy=strategy).remote()] = node
        if pending:
            done, _ = ray.wait(list(pending), num_returns=len(pending),
                               timeout=PROBE_TIMEOUT_S)
            for ref in done:
                try:
                    pending[ref]["gpu_info"] = ray.get(ref)
                except Exception:  # the node lacks llem or NVML: Ray's counts still stand
                    continue
        total = ray.cluster_resources()
        return {"ray_version": ray.__version__, "gpus": float(total.get("GPU", 0)),
                "cpus": float(total.get("CPU", 0)), "nodes": nodes}
    finally:
        if started:
            ray.shutdown()


def alive_nodes() -> list[dict[str, Any]]:
    """The alive nodes: id and total resources (GPU, CPU, accelerator_type:X, custom);
    the driver places workers on them (llem.scheduler.placement)."""
    return [{"node_id": n["NodeID"], "resources": dict(n.get("Resources") or {})}
            for n in ray.nodes() if n.get("Alive")]


def is_alive(node_id: str) -> bool:
    return any(n["node_id"] == node_id for n in alive_nodes())


def connect(address: str | None, num_cpus: int | None = None, num_gpus: int | None = None,
            dashboard: bool = False) -> str:
    """Join the cluster at address/RAY_ADDRESS, else start an embedded local Ray.

    ray.init puts the driver's working folder first on every worker's sys.path: a `llem/`
    folder where the user stands (the parent of a clone) would shadow the installed llem in
    every worker. So Ray starts from a folder holding only a link to this llem
    (llem_source_dir), which is what the workers then find first.

    ray.init also replaces a SIGTERM handler with one that exits 15 at once; a handler the
    caller installed (llem run stops a campaign on SIGTERM as on Ctrl-C) is kept.
    """
    if ray.is_initialized():
        return "existing"
    target = address or os.environ.get("RAY_ADDRESS")
    with _from_llem_folder(), _keep_sigterm_handler():
        if target:
            ray.init(address=target, namespace=NAMESPACE, logging_level=logging.ERROR,
                     log_to_driver=False)
            return target
        # address="local": always a new Ray, never one another process on this host started
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, namespace=NAMESPACE,
                 include_dashboard=dashboard, logging_level=logging.ERROR,
                 log_to_driver=False)
    return "embedded"


@contextlib.contextmanager
def _from_llem_folder() -> Iterator[None]:
    """The working folder is a folder holding only `llem` (a link to this package) while
    Ray starts or is joined, then the user's again."""
    here = Path.cwd()
    try:
        folder = llem_source_dir()
    except OSError:  # the envs folder is not writable: a fresh empty folder shadows nothing
        folder = Path(tempfile.mkdtemp(prefix="llem-ray-cwd-"))
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


@contextlib.contextmanager
def _keep_sigterm_handler() -> Iterator[None]:
    handler = signal.getsignal(signal.SIGTERM) if \
        threading.current_thread() is threading.main_thread() else None
    if not callable(handler):  # the default: Ray's own handler may take its place
        yield
        return
    real = ray._private.utils.set_sigterm_handler
    ray._private.utils.set_sigterm_handler = lambda h: None
    try:
        yield
    finally:
        ray._private.utils.set_sigterm_handler = real
