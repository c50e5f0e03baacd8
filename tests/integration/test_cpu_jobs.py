"""CPU-measured jobs on a real local Ray (4 CPUs, one node): two load groups of the noop
backend on the CPU never run at once by default (they would share the node's cores and RAPL
package), and do with `scheduling.cpu_jobs_per_node: 2`; every row records the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llem import run_campaign
from llem.config.load import load_text
from llem.store.query import run_sql
from llem.store.store import Store

pytestmark = pytest.mark.slow

# 2 models = 2 load groups, 3 jobs each of about a second (4 prompts, batches of 1 or 2, 0.2 s
# a batch, a few passes to fill the window)
GRID = """
name: cpu-jobs
models: [a, b]
backends: [noop]
grid: {batch_size: [1, 2, 4], max_new_tokens: 2}
noop: {request_s: 0.2}
dataset: {num_prompts: 4}
measurement: {warmup_requests: 0, thermal_gaps: false, min_window_s: 0.8}
resources: {gpus_per_job: 0, cpus_per_job: 1}
"""


def _rows(text: str, store: Path) -> list[dict[str, Any]]:
    s = run_campaign(load_text(text), store=Store(store))
    assert (s.ok, s.failed) == (6, 0)
    return run_sql(Store(store), "SELECT model, node_id, worker_pid, cpu_jobs_per_node, "
                   "gpus_per_job, epoch(started_at) AS t0, epoch(finished_at) AS t1 "
                   "FROM runs ORDER BY t0").to_pylist()


def _overlap(rows: list[dict[str, Any]]) -> float:
    """Seconds during which a job of one group ran while a job of the other did."""
    a = [r for r in rows if r["model"] == "a"]
    b = [r for r in rows if r["model"] == "b"]
    return sum(max(0.0, min(x["t1"], y["t1"]) - max(x["t0"], y["t0"])) for x in a for y in b)


def test_cpu_groups_take_turns_on_a_node_by_default(ray_gpus, tmp_path: Path) -> None:
    rows = _rows(GRID, tmp_path)
    assert len({r["node_id"] for r in rows}) == 1 and {r["gpus_per_job"] for r in rows} == {0}
    assert {r["cpu_jobs_per_node"] for r in rows} == {1}
    assert _overlap(rows) == 0.0
    # one group after the other: the order of the rows is a's three, then b's (or b, a)
    assert [r["model"] for r in rows] in (["a"] * 3 + ["b"] * 3, ["b"] * 3 + ["a"] * 3)


def test_cpu_jobs_per_node_two_runs_them_side_by_side(ray_gpus, tmp_path: Path) -> None:
    rows = _rows(GRID + "scheduling: {cpu_jobs_per_node: 2}\n", tmp_path)
    assert len({r["node_id"] for r in rows}) == 1
    assert {r["cpu_jobs_per_node"] for r in rows} == {2}
    assert len({r["worker_pid"] for r in rows}) == 2  # two workers, at once
    assert _overlap(rows) > 0.5
