"""`resources.gpus_per_job` left out of a grid follows the cluster: 1 per job where it has
GPUs, the CPU where it has none, said in one line; a grid that sets it keeps its value.
The GPU side is shown with Ray's declared GPUs (a cluster whose nodes report GPUs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llem.cli.gpu_default import default_gpus
from llem.config.load import load_text
from tests.support.cli import run_cli

GRID = """
name: g
models: [llem:tiny]
backends: [{backend}]
{resources}
"""


def test_on_this_cpu_machine_jobs_run_on_the_cpu_and_it_is_said(tmp_path: Path) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text(GRID.format(backend="transformers", resources=""))
    r = run_cli("run", str(grid), "--dry-run", "--json", "--store", str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr
    assert "resources.gpus_per_job is not set: jobs run on the CPU" in r.stderr
    plan = json.loads(r.stdout)
    assert {p["gpus_per_job"] for p in plan["plan"]} == {0}


@pytest.mark.parametrize(("backend", "resources", "want"), [
    ("transformers", "", 1),                                  # unset: follows the cluster
    ("transformers", "resources: {gpus_per_job: 0}", None),   # set: the grid's value stays
    ("transformers", "grid: {resources.gpus_per_job: [0, 2]}", None),
    ("noop", "", None),                                       # loads nothing on a GPU
])
def test_a_cluster_with_gpus_gives_one_per_job(monkeypatch, backend: str, resources: str,
                                               want: int | None) -> None:
    monkeypatch.setattr("llem.cli.gpu_default.cluster_gpus", lambda address: 4)
    gpus, note = default_gpus(load_text(GRID.format(backend=backend, resources=resources)),
                              None)
    assert gpus == want
    assert (note is not None) == (want is not None)
    if want:
        assert "1 GPU per job (the cluster has 4 GPUs)" in str(note)
