"""Cross-GPU calibration (measurement.calibrate) on a real local Ray with 2 declared GPUs.

The GPUs are the one stand-in: each worker process Ray starts finds simulated GPUs
(tests.support.fake_gpu.install_in_worker, Ray's worker_process_setup_hook) whose true
energy is the same for the same work (idle power plus a fixed energy per generated token),
and whose sensors read -9.5% (GPU 0) and +6.4% (GPU 1) off it, the spread reported between
boards of one model. Two configurations doing the same work (they differ
only in a load-time setting, so they are two load groups and run side by side on the two
GPUs) are measured; the reference job runs on both GPUs first. The factors must recover the
offsets, the raw energies differ by them, the normalised ones agree. (Whether each
configuration keeps one GPU or its cycles alternate between them depends on the order the
driver runs them in; both are checked.)"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest

from llem import run_campaign
from llem.config.load import load_text
from llem.store.query import run_sql
from llem.store.store import Store
from tests.support.cli import run_cli
from tests.support.fake_gpu import OFFSETS_ENV, PERIOD_ENV
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow

OFFSETS = {"GPU-fake-0": -0.095, "GPU-fake-1": 0.064}
GRID = """
name: cal
models: [m]
backends: [noop]
cycles: 2
grid:
  batch_size: 4
  max_new_tokens: 8
  noop.load_s: [0, 0.01]        # a load-time setting: two load groups, the same work
noop: {request_s: 0.05}
dataset: {num_prompts: 8}
measurement:
  calibrate: true
  thermal_gaps: false
  idle_baseline_s: 0.2
  min_window_s: 1.0
  warmup_requests: 8
  # validity is not what this tests, and a busy 2-core host fails its checks at random
  # (the simulated GPU's samples show idle power, its counter the work): every row counts
  valid_require_warmup_converged: false
  valid_min_sample_coverage: 0
  valid_max_counter_sampled_gap: 100
resources: {gpus_per_job: 1}
"""


@pytest.fixture(scope="module")
def ray_fake_gpus(llem_cache: Path) -> Any:
    """A local Ray with 2 declared GPUs whose workers see simulated ones."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    env = {OFFSETS_ENV: "0:-0.095,1:0.064", PERIOD_ENV: "0.01",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p)}  # the hook's module, tests.support
    ray.init(address="local", num_cpus=4, num_gpus=2, include_dashboard=False,
             namespace="llem", logging_level="ERROR", log_to_driver=False,
             runtime_env={"worker_process_setup_hook":
                          "tests.support.fake_gpu.install_in_worker", "env_vars": env})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def store(ray_fake_gpus: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cal") / "store"
    s = run_campaign(load_text(GRID), store=Store(path))
    assert (s.ok, s.failed) == (4, 0), s.errors
    return path


def test_factors_recover_the_sensor_offsets(store: Path) -> None:
    refs = run_sql(Store(store), "SELECT cycle, gpu_uuids, energy_per_token_j, energy_valid "
                   "FROM runs WHERE campaign = 'cal.calibration' ORDER BY cycle").to_pylist()
    assert sorted(r["gpu_uuids"][0] for r in refs) == sorted(OFFSETS)  # one per GPU
    assert all(r["energy_valid"] for r in refs)
    rows = run_sql(Store(store), "SELECT gpu_uuids[1] AS gpu, calibration_factor, "
                   "calibration_gpus, calibration_reference, calibration_reference_j, "
                   "calibration_reference_mean_j FROM runs WHERE campaign = 'cal'").to_pylist()
    assert {r["gpu"] for r in rows} == set(OFFSETS)  # the campaign used both GPUs
    mean = statistics.fmean(1 + o for o in OFFSETS.values())
    for r in rows:
        assert r["calibration_factor"] == pytest.approx((1 + OFFSETS[r["gpu"]]) / mean,
                                                        rel=0.03)
        assert r["calibration_gpus"] == 2
        assert r["calibration_factor"] == pytest.approx(
            r["calibration_reference_j"] / r["calibration_reference_mean_j"])
        assert r["calibration_reference"].startswith("cal.calibration job ")
    by_gpu = {r["gpu"]: r["calibration_factor"] for r in rows}
    assert by_gpu["GPU-fake-1"] / by_gpu["GPU-fake-0"] == pytest.approx(1.064 / 0.905,
                                                                          rel=0.03)


def test_normalised_energy_agrees_across_gpus_where_raw_differs(store: Path) -> None:
    rows = run_sql(Store(store), "SELECT gpu_uuids[1] AS gpu, energy_j, energy_per_token_j, "
                   "energy_j_normalised, energy_per_token_j_normalised FROM runs "
                   "WHERE campaign = 'cal'").to_pylist()
    per: dict[str, dict[str, float]] = {}
    for gpu in OFFSETS:
        mine = [r for r in rows if r["gpu"] == gpu]
        per[gpu] = {k: statistics.fmean(r[k] for r in mine)
                    for k in ("energy_per_token_j", "energy_per_token_j_normalised")}
        for r in mine:  # the raw figures stay; the normalised ones are beside them
            assert r["energy_j_normalised"] != r["energy_j"]
    raw = per["GPU-fake-1"]["energy_per_token_j"] / per["GPU-fake-0"]["energy_per_token_j"]
    norm = (per["GPU-fake-1"]["energy_per_token_j_normalised"]
            / per["GPU-fake-0"]["energy_per_token_j_normalised"])
    assert raw == pytest.approx(1.064 / 0.905, rel=0.04)  # the sensors' 17.6% apart
    assert norm == pytest.approx(1.0, abs=0.04)


def test_compare_groups_by_gpu(store: Path) -> None:
    """`llem compare --by gpu`: the statistics per GPU, raw and normalised."""
    r = run_cli("compare", "cal", "--store", str(store), "--by", "gpu", "--metric",
                "energy_per_token_j,energy_per_token_j_normalised", "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert sorted(x["gpu_uuids"][0] for x in rows) == sorted(OFFSETS)
    assert all(x["n"] == 2 for x in rows)
    a, b = sorted(rows, key=lambda x: x["gpu_uuids"][0])
    assert a["baseline"] and a["gpu_uuids"] == ["GPU-fake-0"]  # ratios against GPU 0
    assert b["energy_per_token_j_ratio"] == pytest.approx(1.064 / 0.905, rel=0.04)
    assert b["energy_per_token_j_normalised_ratio"] == pytest.approx(1.0, abs=0.04)



def test_compare_and_report_show_the_normalised_figure(store: Path, tmp_path: Path) -> None:
    """A calibrated campaign's comparison and report carry J/token normalised beside the raw
    one, without asking. Whether a configuration's cycles ran on one GPU (the raw figures
    then differ between configurations) or on both (they then spread within it, which the
    CV shows), the normalised figures agree and do not spread."""
    r = run_cli("compare", "cal", "--store", str(store), "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    spans = {x["job_id"]: x["gpus"] for x in run_sql(Store(store), (
        "SELECT job_id, list(DISTINCT gpu_uuids[1]) AS gpus FROM runs WHERE campaign = 'cal' "
        "GROUP BY job_id")).to_pylist()}
    assert len(rows) == 2 and sorted(len(g) for g in spans.values()) in ([1, 1], [2, 2])
    for x in rows:
        assert x["energy_per_token_j_normalised_cv"] < 0.01
        assert x["energy_per_token_j_normalised_ratio"] == pytest.approx(1.0, abs=0.04)
    if all(len(g) == 2 for g in spans.values()):  # cycles on both GPUs: raw spreads
        assert all(x["energy_per_token_j_cv"] > 0.08 for x in rows)
    else:  # one GPU per configuration: raw differs between them by the sensors
        ratio = max(x["energy_per_token_j_ratio"] for x in rows) / min(
            x["energy_per_token_j_ratio"] for x in rows)
        assert ratio == pytest.approx(1.064 / 0.905, rel=0.04)
    out = tmp_path / "cal.html"
    rep = run_cli("report", "cal", "--store", str(store), "-o", str(out))
    assert rep.returncode == 0, rep.stderr
    assert "energy per token, normalised across GPUs (J/token)" in out.read_text()


def test_a_resume_with_nothing_left_calibrates_nothing(store: Path, tmp_path: Path) -> None:
    """Calibration runs just before a session's first worker: a second session of a
    finished campaign starts none, so it writes no reference rows and says nothing of it
    (the first session's, the module's store, did: one reference session)."""
    copy = tmp_path / "store"
    shutil.copytree(store, copy)

    def reference_sessions() -> set[str]:
        return {r["session_id"] for r in run_sql(Store(copy), (
            "SELECT session_id FROM runs WHERE campaign = 'cal.calibration'")).to_pylist()}

    first = reference_sessions()
    events: list[str] = []
    s = run_campaign(load_text(GRID), store=Store(copy), on_event=events.append)
    assert (s.ok, s.skipped) == (0, 4) and not [e for e in events if "calibration" in e]
    assert reference_sessions() == first and len(first) == 1
