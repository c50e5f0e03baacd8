"""A Ray head started by the `ray` CLI on free ports, with its dashboard: for the tests that
need what a user's cluster has (Jobs API, State API, metrics export port)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Head:
    dashboard: str  # http://127.0.0.1:PORT: Jobs and State API, `llem submit --address`
    gcs: str  # 127.0.0.1:PORT: `ray.init(address=...)`, `llem run --address`
    metrics_port: int  # the node's Prometheus endpoint: http://127.0.0.1:PORT/metrics
    env: dict[str, str]  # the environment the head was started with


def free_ports(n: int) -> list[int]:
    """n distinct ports free right now (bound together, so the OS gives different ones)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@contextmanager
def ray_head(tmp: Path) -> Iterator[Head]:
    """A Ray head, token auth disabled, as a user starts one; stopped on exit.

    Every port is picked free and the head runs in its own process group (`ray start
    --block`), so it neither collides with nor stops (as `ray stop` would) any other Ray on
    this machine; it is yielded once the dashboard answers.
    """
    ray_bin = str(Path(sys.executable).parent / "ray")
    # no drain on stop (Ray 2.60 waits up to 30 s for the node to drain on SIGTERM)
    full_env = {**os.environ, "RAY_AUTH_MODE": "disabled",
                "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    full_env.pop("RAY_ADDRESS", None)
    gcs, dash, agent, agent_grpc, rt_env, metrics, nm, om, client = free_ports(9)
    log_path = tmp / "ray-start.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [ray_bin, "start", "--head", "--block", "--num-cpus=2", "--num-gpus=0",
             f"--port={gcs}", f"--dashboard-port={dash}", "--include-dashboard=true",
             f"--dashboard-agent-listen-port={agent}",
             f"--dashboard-agent-grpc-port={agent_grpc}",
             f"--runtime-env-agent-port={rt_env}", f"--metrics-export-port={metrics}",
             f"--node-manager-port={nm}", f"--object-manager-port={om}",
             f"--ray-client-server-port={client}", f"--temp-dir={tmp}",
             "--disable-usage-stats"],
            env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            address = f"http://127.0.0.1:{dash}"
            deadline = time.monotonic() + 180
            while True:
                try:
                    with urllib.request.urlopen(f"{address}/api/version", timeout=5) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "the Ray head did not start in 180 s"
                time.sleep(1)
            yield Head(address, f"127.0.0.1:{gcs}", metrics, full_env)
        finally:
            # `ray start` stops its own processes (SIGTERM to the whole group instead
            # made it wait ~30 s on a GCS already gone); stragglers of the group go after
            proc.terminate()
            try:
                proc.wait(timeout=60)
            finally:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
