"""llem submit against a real `ray start --head` on this machine."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def free_ports(n: int) -> list[int]:
    """n distinct ports free right now (bound together, so the OS gives different ones)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory):
    """A Ray head node started by the `ray` CLI, token auth disabled, as a user starts one.

    Every port is picked free and the head runs in its own process group (`ray start
    --block`), so it neither collides with nor stops (as `ray stop` would) any other Ray on
    this machine; the fixture waits until the dashboard answers.
    """
    tmp = tmp_path_factory.mktemp("ray")
    ray_bin = str(Path(sys.executable).parent / "ray")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    gcs, dash, agent, agent_grpc, rt_env, metrics, nm, om, client = free_ports(9)
    log = (tmp / "ray-start.log").open("w")
    proc = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", "--num-cpus=2", "--num-gpus=0",
         f"--port={gcs}", f"--dashboard-port={dash}", "--include-dashboard=true",
         f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
         f"--runtime-env-agent-port={rt_env}", f"--metrics-export-port={metrics}",
         f"--node-manager-port={nm}", f"--object-manager-port={om}",
         f"--ray-client-server-port={client}", f"--temp-dir={tmp}", "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{address}/api/version", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert proc.poll() is None, (tmp / "ray-start.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the Ray head did not start in 180 s"
        time.sleep(1)
    yield address, env
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    log.close()


def test_submit_and_wait(head, tmp_path: Path, llem_cache: Path) -> None:
    address, _ = head
    grid_dir = tmp_path / "grid"
    grid_dir.mkdir()
    (grid_dir / "g.yaml").write_text("""
name: submitted
models: [m]
backends: [noop]
cycles: 2
grid: {batch_size: [1, 4], max_new_tokens: 4}
""")
    store = tmp_path / "store"
    r = run_cli("submit", str(grid_dir / "g.yaml"), "--address", address, "--store",
                str(store), "--wait", env={"RAY_AUTH_MODE": "disabled"}, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "submitted llem-g-" in r.stdout
    assert f"{address}/#/jobs" in r.stdout
    assert "SUCCEEDED" in r.stdout
    q = run_cli("query", "SELECT count(*) AS n FROM runs WHERE status = 'ok'", "--store",
                str(store), "--format", "json")
    assert json.loads(q.stdout) == [{"n": 4}]


def test_submit_bad_grid_sends_nothing(head, tmp_path: Path) -> None:
    address, _ = head
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodels: [m]\nbakends: [noop]\n")
    r = run_cli("submit", str(bad), "--address", address)
    assert r.returncode == 2 and "did you mean 'backends'" in r.stderr


def test_unreachable_cluster_is_one_line(tmp_path: Path) -> None:
    g = tmp_path / "g.yaml"
    g.write_text("name: x\nmodels: [m]\nbackends: [noop]\n")
    r = run_cli("submit", str(g), "--address", "http://127.0.0.1:9")
    assert r.returncode == 2
    assert r.stderr.startswith("error: cannot reach the Ray cluster")
    assert "Traceback" not in r.stderr




def test_status_logs_stop(head, tmp_path: Path, llem_cache: Path) -> None:
    """A slow campaign submitted without --wait: status, logs, stop, then STOPPED; the
    stopped campaign stored only whole results (resumable)."""
    import re
    import time

    address, _ = head
    env = {"RAY_AUTH_MODE": "disabled"}
    (tmp_path / "g.yaml").write_text("""
name: slow
models: [m]
backends: [noop]
grid: {seed: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], max_new_tokens: 2}
noop: {request_s: 1.0}
measurement: {warmup_requests: 0, thermal_gaps: false}
""")
    store = tmp_path / "store"
    r = run_cli("submit", str(tmp_path / "g.yaml"), "--address", address, "--store",
                str(store), env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    job = re.search(r"submitted (\S+)", r.stdout).group(1)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(store.glob("runs/*/*.parquet")):
        time.sleep(1)
    s = run_cli("status", job, "--address", address, env=env)
    assert s.returncode == 0 and f"{job}: RUNNING" in s.stdout, s.stdout + s.stderr
    logs = run_cli("logs", job, "--address", address, env=env)
    assert logs.returncode == 0
    stopped = run_cli("stop", job, "--address", address, env=env)
    assert stopped.returncode == 0 and f"stopping {job}" in stopped.stdout
    while time.monotonic() < deadline:
        s = run_cli("status", job, "--address", address, "--json", env=env)
        if json.loads(s.stdout)["status"] not in ("RUNNING", "PENDING"):
            break
        time.sleep(1)
    assert json.loads(s.stdout)["status"] == "STOPPED" and s.returncode == 1
    n = len(list(store.glob("runs/*/*.parquet")))
    assert 1 <= n < 12
    unknown = run_cli("status", "llem-nope", "--address", address, env=env)
    assert unknown.returncode == 2 and "no job 'llem-nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
