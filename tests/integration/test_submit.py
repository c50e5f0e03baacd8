"""llem submit against a real `ray start --head` on this machine."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.ray_head import ray_head

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory):
    """A `ray start --head` of its own (tests.ray_head): dashboard address and env."""
    with ray_head(tmp_path_factory.mktemp("ray")) as h:
        yield h.dashboard, h.env


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
    address, _ = head
    env = {"RAY_AUTH_MODE": "disabled"}
    (tmp_path / "g.yaml").write_text("""
name: slow
models: [m]
backends: [noop]
grid: {temperature: 0.5, seed: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], max_new_tokens: 2}
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
