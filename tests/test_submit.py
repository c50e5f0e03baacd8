"""llem submit against a real `ray start --head` on this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory):
    """A Ray head node started by the `ray` CLI, token auth disabled, dashboard on 8265."""
    tmp = tmp_path_factory.mktemp("ray")
    ray_bin = str(Path(sys.executable).parent / "ray")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    port = "8277"
    subprocess.run([ray_bin, "start", "--head", "--num-cpus=2", "--num-gpus=0",
                    f"--dashboard-port={port}", "--include-dashboard=true",
                    f"--temp-dir={tmp}", "--disable-usage-stats"],
                   check=True, env=env, capture_output=True, timeout=120)
    yield f"http://127.0.0.1:{port}", env
    subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)


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


