"""The driver on a real local Ray with 2 declared GPUs: pinning, grouping, streaming, faults."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem import run_campaign
from llem.config.load import load_text
from llem.scheduler.state import Summary
from llem.store.query import run_sql
from llem.store.store import Store

pytestmark = pytest.mark.slow


def _run(text: str, store: Path) -> tuple[None, Summary]:
    return None, run_campaign(load_text(text), store=Store(store))


def test_groups_share_one_load_and_gpus_are_exclusive(ray_gpus, tiny_model, tmp_path) -> None:
    """2 dtypes -> 2 load groups, each on its own declared GPU; 3 jobs each, one load each."""
    text = f"""
name: pin
models: [{tiny_model}]
backends: [transformers]
cycles: 1
grid:
  dtype: [float32, bfloat16]
  batch_size: [1, 2, 4]
  max_new_tokens: 4
transformers: {{device_map: cpu}}   # the declared GPUs are not real: compute on the CPU
dataset: {{num_prompts: 4}}
measurement: {{warmup_requests: 1}}
resources: {{gpus_per_job: 1}}
"""
    _, s = _run(text, tmp_path)
    assert (s.ok, s.failed, s.model_loads) == (6, 0, 2)
    rows = run_sql(Store(tmp_path), "SELECT dtype, list(DISTINCT worker_pid) AS pids, "
                   "list(DISTINCT visible_devices) AS devs, max(model_loads) AS loads "
                   "FROM runs GROUP BY dtype ORDER BY dtype").to_pylist()
    assert [len(r["pids"]) for r in rows] == [1, 1]          # one worker per group
    assert [r["loads"] for r in rows] == [1, 1]               # model loaded once per group
    devs = [r["devs"] for r in rows]
    assert all(len(d) == 1 and d[0] in ("0", "1") for d in devs)
    assert devs[0] != devs[1]                                 # each group pinned to its own GPU
    energy = run_sql(Store(tmp_path), "SELECT DISTINCT energy_j IS NULL AS missing, "
                     "energy_unavailable FROM runs").to_pylist()
    assert energy[0]["missing"] and "NVML unavailable" in energy[0]["energy_unavailable"]


def test_more_groups_than_gpus_queue(ray_gpus, tmp_path) -> None:
    """4 groups on 2 GPUs: never more than 2 workers alive; all jobs done."""
    text = """
name: queue
models: [a, b, c, d]
backends: [noop]
grid: {batch_size: [1, 2], max_new_tokens: 2}
noop: {request_s: 0.2}
dataset: {num_prompts: 8}
resources: {gpus_per_job: 1}
"""
    _, s = _run(text, tmp_path)
    assert (s.ok, s.failed, s.model_loads) == (8, 0, 4)
    rows = run_sql(Store(tmp_path), "SELECT model, started_at, finished_at, visible_devices "
                   "FROM runs").to_pylist()
    # at any instant at most 2 jobs run, and concurrently running jobs hold different GPUs
    for r in rows:  # the jobs running at the instant r started
        running = [o for o in rows if o["started_at"] <= r["started_at"] < o["finished_at"]]
        assert len(running) <= 2
        assert len({o["visible_devices"] for o in running}) == len(running)


def test_failure_is_a_row_and_the_campaign_goes_on(ray_gpus, tmp_path) -> None:
    text = """
name: faults
models: [m]
backends: [noop]
grid:
  max_new_tokens: 2
  generate.fail: [boom, null]
"""
    _, s = _run(text, tmp_path)
    assert (s.ok, s.failed) == (1, 1)
    rows = run_sql(Store(tmp_path), "SELECT status, error FROM runs ORDER BY status").to_pylist()
    assert rows[0]["status"] == "failed" and "boom" in rows[0]["error"]
    assert rows[1]["status"] == "ok"


def test_resume_skips_done_jobs(ray_gpus, tmp_path) -> None:
    text = """
name: resume
models: [m]
backends: [noop]
cycles: 2
grid: {batch_size: [1, 2], max_new_tokens: 2}
"""
    _, first = _run(text, tmp_path)
    assert (first.ok, first.skipped) == (4, 0)
    _, again = _run(text, tmp_path)
    assert (again.ok, again.skipped, again.model_loads) == (0, 4, 0)
    n = run_sql(Store(tmp_path), "SELECT count(*) AS n FROM runs").to_pylist()[0]["n"]
    assert n == 4


REUSE = """
name: reuse
models: [a, b, c]
backends: [noop]
grid: {batch_size: [1, 2], max_new_tokens: 2}
noop: {request_s: 0.05}
measurement: {warmup_requests: 0, thermal_gaps: false}
resources: {gpus_per_job: 2}
"""


def test_one_worker_process_serves_the_groups_in_turn(ray_gpus, tmp_path) -> None:
    """3 models of one backend, each job on both GPUs: one worker process loads each model
    in turn (closing the last), and every load is counted once."""
    _, s = _run(REUSE, tmp_path)
    assert (s.ok, s.failed, s.workers, s.model_loads) == (6, 0, 1, 3)
    rows = run_sql(Store(tmp_path), "SELECT model, worker_pid, model_loads, "
                   "epoch(started_at) AS t FROM runs ORDER BY t").to_pylist()
    assert len({r["worker_pid"] for r in rows}) == 1
    order = list(dict.fromkeys(r["model"] for r in rows))   # groups ran one after another
    assert sorted(order) == ["a", "b", "c"]
    assert [r["model_loads"] for r in rows] == [1, 1, 2, 2, 3, 3]  # loads so far, per process
    sess = run_sql(Store(tmp_path), "SELECT model_loads, workers FROM sessions").to_pylist()
    assert sess == [{"model_loads": 3, "workers": 1}]


@pytest.mark.parametrize("how", ["option off", "backend cannot reload"])
def test_without_reuse_each_group_gets_a_fresh_worker(ray_gpus, tmp_path, monkeypatch,
                                                      how) -> None:
    """scheduling.reuse_workers false, or a backend that does not free memory on close
    (vLLM, TensorRT-LLM): a new worker process per load group, as before."""
    text = REUSE
    if how == "option off":
        text += "scheduling: {reuse_workers: false}\n"
    else:
        from llem.backends.noop import NoopBackend

        monkeypatch.setattr(NoopBackend, "reloads_in_process", False)  # read by the driver
    _, s = _run(text, tmp_path)
    assert (s.ok, s.failed, s.workers, s.model_loads) == (6, 0, 3, 3)
    rows = run_sql(Store(tmp_path), "SELECT model, worker_pid, model_loads FROM runs"
                   ).to_pylist()
    assert len({r["worker_pid"] for r in rows}) == 3
    assert {r["model_loads"] for r in rows} == {1}
