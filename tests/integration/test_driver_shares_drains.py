"""The Ray driver takes the simulated core's share and drain decisions (llem.scheduler.shares,
llem.scheduler.drains) on a real multi-node Ray (ray.cluster_utils.Cluster).

Nodes: the head A (2 GPUs, no accelerator type, a custom resource side_a) and node Y (3
GPUs, accelerator Y); the noop backend stands in for a model. With 2 and 3 GPUs, the
tightest fit puts a campaign's first 1-GPU workers on A, then on Y: what the drains and the
shares have to undo. (A node of an accelerator type that untied workers fill is not drained
for an untied wide group, in the core as here: the shares keep that group off the type,
Books.reserve included.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llem import run_campaign
from llem.config.load import load_text
from llem.store.query import run_sql
from llem.store.store import Store

pytestmark = pytest.mark.slow

SEEDS = "[" + ", ".join(str(i) for i in range(20)) + "]"  # 20 jobs of one group


@pytest.fixture(scope="module")
def nodes(llem_cache: Path):
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "num_gpus": 2, "resources": {"side_a": 2}})
    y = c.add_node(num_cpus=1, num_gpus=3, resources={"accelerator_type:Y": 1})
    ray.init(address=c.address, namespace="llem", logging_level="ERROR", log_to_driver=False)
    c.wait_for_nodes()
    head = next(n["NodeID"] for n in ray.nodes() if n["NodeID"] != y.node_id)
    yield {"A": head, "Y": y.node_id}
    ray.shutdown()
    c.shutdown()


def _rows(text: str, store: Path, total: int) -> list[dict[str, Any]]:
    s = run_campaign(load_text(text), store=Store(store))
    assert (s.ok, s.failed) == (total, 0), s.errors
    rows = run_sql(Store(store), "SELECT model, node_id, worker_pid AS pid, "
                   "epoch(started_at) AS s, epoch(finished_at) AS f FROM runs").to_pylist()
    assert len(rows) == total
    return rows


def test_a_node_is_drained_for_a_wide_group_before_the_narrow_one_ends(nodes,
                                                                       tmp_path) -> None:
    """n (40 short 1-GPU jobs) starts first on A, the 2-GPU w on Y, and n's splits take the
    3 GPUs left (2 on A): w could get a second node only once n ends. The driver keeps A
    for w (Books.reserve): n's workers there leave after a job (n still finishes before w),
    and w's second worker runs on A while n still has jobs to start."""
    rows = _rows("""
name: drain
models: [n]
backends: [noop]
grid: {temperature: 0.5, seed: SEEDS, max_new_tokens: [1, 2]}
experiments: [{model: w, seed: [0, 1, 2, 3, 4, 5, 6, 7], noop.request_s: 1.0,
               resources: {gpus_per_job: 2}}]
noop: {request_s: 0.1}
dataset: {num_prompts: 1}
measurement: {warmup_requests: 0, thermal_gaps: false}
resources: {gpus_per_job: 1}
""".replace("SEEDS", SEEDS), tmp_path, 48)
    n_last = max(r["s"] for r in rows if r["model"] == "n")
    w_on_a = sorted(r["s"] for r in rows if r["model"] == "w" and r["node_id"] == nodes["A"])
    assert {r["node_id"] for r in rows if r["model"] == "w"} == {nodes["A"], nodes["Y"]}
    # without the drain, w reaches A only after n's last job was sent (and a fresh actor)
    early = [s for s in w_on_a if s < n_last]
    assert len(early) >= 2, (w_on_a, n_last)


def test_a_group_tied_to_a_type_is_not_starved_by_untied_groups(nodes, tmp_path) -> None:
    """u0-u4 (untied, 20 jobs each) start before t (tied to Y, 10 jobs); by the tightest
    fit they fill A's 2 GPUs and Y's 3, and t would wait for one of them to end. The GPUs
    of Y that t needs are kept from untied workers (llem.scheduler.shares): u0-u3 start,
    t starts on Y beside them, u4 waits."""
    rows = _rows("""
name: shares
models: [u0, u1, u2, u3, u4]
backends: [noop]
grid: {temperature: 0.5, seed: SEEDS}
experiments: [{model: t, seed: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
               resources: {accelerator_type: Y}}]
noop: {request_s: 0.1}
dataset: {num_prompts: 1}
measurement: {warmup_requests: 0, thermal_gaps: false}
resources: {gpus_per_job: 1}
""".replace("SEEDS", SEEDS), tmp_path, 110)
    t_first = min(r["s"] for r in rows if r["model"] == "t")
    ends = {m: max(r["f"] for r in rows if r["model"] == m) for m in ("u0", "u1", "u2", "u3",
                                                                      "u4")}
    assert all(r["node_id"] == nodes["Y"] for r in rows if r["model"] == "t")
    # without the shares, t gets a GPU of Y only once one of the u groups has ended
    assert t_first < min(ends.values()), (t_first, ends)


def test_a_split_runs_beside_a_waiting_group_it_shares_no_node_with(nodes, tmp_path) -> None:
    """s (40 jobs, side_a: A only) starts first; y0-y3 (tied to Y, 20 jobs each) take Y's 3
    GPUs and one waits. A's second GPU is no use to the waiting one (no kind of node runs
    both): s splits onto it at once, where the driver used to wait for the Y group."""
    rows = _rows("""
name: beside
models: [y0, y1, y2, y3]
backends: [noop]
grid: {temperature: 0.5, seed: SEEDS}
experiments: [{model: s, seed: SEEDS2, resources: {custom: {side_a: 1}, accelerator_type: null}}]
noop: {request_s: 0.1}
dataset: {num_prompts: 1}
measurement: {warmup_requests: 0, thermal_gaps: false}
resources: {gpus_per_job: 1, accelerator_type: Y}
""".replace("SEEDS2", "[" + ", ".join(str(i) for i in range(40)) + "]")
                 .replace("SEEDS", SEEDS), tmp_path, 120)
    s_rows = [r for r in rows if r["model"] == "s"]
    assert {r["node_id"] for r in s_rows} == {nodes["A"]}
    firsts = {m: min(r["s"] for r in rows if r["model"] == m) for m in ("y0", "y1", "y2", "y3")}
    waited = max(firsts.values())  # the Y group that waited for a GPU of Y
    by_pid: dict[int, float] = {}
    for r in s_rows:
        by_pid[r["pid"]] = min(by_pid.get(r["pid"], r["s"]), r["s"])
    assert len(by_pid) == 2, by_pid
    assert max(by_pid.values()) < waited, (by_pid, firsts)
