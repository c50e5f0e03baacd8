"""Measurement logic against hand-computed values: statistics, the energy window and its
sampler under a clock the test controls, RAPL parsing from files written here, FLOPs, and
arrival schedules. The GPU is simulated (tests/fake_gpu.py); everything else is real."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from llem.harness.workload import Schedule
from llem.measure.meter import EnergyMeter, integrate
from llem.measure.rapl import RaplReader, delta_uj, domains
from llem.measure.stats import cv, cycle_stats, t_critical
from llem.models.flops import estimate_flops, request_flops
from llem.models.shape import Shape, ShapeError, shape_of
from tests.support.fake_gpu import FakeClock, FakeGpu

# ---- statistics -------------------------------------------------------------------------


def test_cycle_stats_by_hand() -> None:
    s = cycle_stats([10.0, 12.0, 14.0])
    assert s["n"] == 3 and s["mean"] == pytest.approx(12.0)
    assert s["std"] == pytest.approx(2.0)  # sqrt(((-2)^2 + 0 + 2^2) / (3 - 1))
    assert s["cv"] == pytest.approx(2.0 / 12.0)
    # t(0.975, df=2) = 4.302653; half-width = t * s / sqrt(n)
    assert s["ci95"] == pytest.approx(4.302653 * 2.0 / math.sqrt(3), rel=1e-6)


def test_cycle_stats_edges() -> None:
    one = cycle_stats([5.0, None, float("nan")])
    assert one == {"n": 1, "mean": 5.0, "std": None, "ci95": None, "cv": None}
    assert cycle_stats([])["mean"] is None
    assert cycle_stats([0.0, 0.0])["cv"] is None  # CV of a zero mean is undefined
    assert t_critical(0) is None
    assert t_critical(1000) == pytest.approx(1.962, abs=1e-3)  # towards the normal 1.96
    assert cv([1.0, 1.0, 1.0]) == 0.0


# ---- the energy window under a controlled clock ------------------------------------------


def test_integrate_trapezoid() -> None:
    rows = [{"t_s": 0.0, "gpu_uuid": "a", "power_w": 100.0},
            {"t_s": 1.0, "gpu_uuid": "a", "power_w": 300.0},
            {"t_s": 3.0, "gpu_uuid": "a", "power_w": 300.0},
            {"t_s": 1.5, "gpu_uuid": "b", "power_w": 999.0},
            {"t_s": 4.0, "gpu_uuid": "a", "power_w": None}]
    assert integrate(rows, "a") == pytest.approx(200.0 + 600.0)
    assert integrate(rows, "b") is None  # one sample is no integral


def _window(clock: FakeClock, gpus: list[FakeGpu], seconds: float, hz: float = 10.0,
            rapl_root: Path | None = None):
    meter = EnergyMeter(len(gpus), gpus=gpus, clock=clock, sleep=clock.sleep,
                        rapl_root=rapl_root or Path("/nonexistent"))
    meter.begin(hz, thread=False)
    steps = round(seconds * hz)
    for _ in range(steps):
        clock.sleep(1.0 / hz)
        meter.sampler.take()
    return meter, meter.end()


def test_window_counter_and_sampled_energy_agree() -> None:
    """A power ramp with ripple: counter and trapezoid integral both near the exact value,
    and the counter's 100 ms steps bound its error."""
    clock = FakeClock()
    gpu = FakeGpu(clock, lambda t: 200.0 + 20.0 * math.sin(t) + 5.0 * (t - 1000.0))
    clock.sleep(0.05)  # start between two counter updates
    _, w = _window(clock, [gpu], 10.0)
    assert w.duration_s == pytest.approx(10.0)
    exact = gpu._joules(clock()) - gpu._joules(clock() - 10.0)
    counter = w.gpu_energy_j[gpu.uuid]
    sampled = w.gpu_sampled_energy_j[gpu.uuid]
    assert counter is not None and sampled is not None
    assert abs(counter - exact) <= 2 * 0.1 * 300.0  # at most one update period per edge
    assert sampled == pytest.approx(exact, rel=2e-3)
    assert counter / sampled == pytest.approx(1.0, abs=0.02)
    assert len(w.samples) == 101 and w.samples[0]["t_s"] == 0.0
    assert w.samples[-1]["t_s"] == pytest.approx(10.0)
    assert w.method == "nvml_counter" and w.energy_j == counter


def test_multi_gpu_window_sums_and_keeps_per_gpu() -> None:
    from llem.harness.result import energy_columns

    clock = FakeClock()
    gpus = [FakeGpu(clock, lambda t: 100.0, uuid="GPU-a"),
            FakeGpu(clock, lambda t: 300.0, uuid="GPU-b", index=1)]
    meter = EnergyMeter(2, gpus=gpus, clock=clock, sleep=clock.sleep,
                        rapl_root=Path("/nonexistent"))
    idle = meter.idle_baseline(2.0)
    assert idle is not None and idle.power_w["GPU-a"] == pytest.approx(100.0, rel=0.01)
    meter.begin(10.0, thread=False)
    for _ in range(40):
        clock.sleep(0.1)
        meter.sampler.take()
    w = meter.end()
    assert w.gpu_energy_j["GPU-a"] == pytest.approx(400.0, rel=0.01)
    assert w.gpu_energy_j["GPU-b"] == pytest.approx(1200.0, rel=0.01)
    cols = energy_columns(w, out_tok=160, n_req=8, intensity=400.0)
    assert cols["energy_j"] == pytest.approx(1600.0, rel=0.01)
    assert cols["gpu_energy_j_per_gpu"] == pytest.approx([400.0, 1200.0], rel=0.01)
    assert cols["energy_per_token_j"] == pytest.approx(10.0, rel=0.01)
    assert cols["idle_power_w"] == pytest.approx(400.0, rel=0.01)
    assert cols["energy_net_j"] == pytest.approx(0.0, abs=20.0)  # it idled at full power
    assert cols["energy_counter_to_sampled"] == pytest.approx(1.0, abs=0.01)
    # 1600 J = 1600 / 3.6e6 kWh, at 400 g/kWh
    assert cols["co2_estimate_g"] == pytest.approx(1600 / 3.6e6 * 400, rel=0.01)


def test_idle_baseline_records_state_and_just_worked() -> None:
    clock = FakeClock()
    gpu = FakeGpu(clock, lambda t: 72.0, temperature_c=33, sm_clock_mhz=345)  # ints, as NVML
    meter = EnergyMeter(1, gpus=[gpu], clock=clock, sleep=clock.sleep,
                        rapl_root=Path("/nonexistent"))
    cold = meter.idle_baseline(5.0)
    assert cold is not None and cold.since_work_s is None and cold.just_worked is None
    assert cold.seconds == pytest.approx(5.0) and cold.power_w[gpu.uuid] == pytest.approx(72.0)
    assert cold.columns()["idle_temperature_c"] == 33.0
    assert cold.columns()["idle_sm_clock_mhz"] == 345.0
    meter.worked()
    clock.sleep(2.0)
    hot = meter.idle_baseline(1.0)
    assert hot is not None and hot.since_work_s == pytest.approx(2.0) and hot.just_worked
    clock.sleep(100.0)
    assert meter.idle_baseline(1.0).just_worked is False
    assert meter.idle_baseline(0) is None  # off: the next window has no (stale) baseline
    meter.begin(10.0, thread=False)
    clock.sleep(1.0)
    w = meter.end()
    assert w.idle is None and w.idle_power_w == {gpu.uuid: None}


def test_sampler_thread_real_clock() -> None:
    """The real sampler thread at 50 Hz for ~0.3 s: rows at increasing times, one per tick."""
    import time

    gpu = FakeGpu(time.perf_counter, lambda t: 150.0)
    meter = EnergyMeter(1, gpus=[gpu], rapl_root=Path("/nonexistent"))
    meter.begin(50.0)
    time.sleep(0.3)
    w = meter.end()
    ts = [r["t_s"] for r in w.samples]
    assert len(ts) >= 5 and ts == sorted(ts)
    assert w.gpu_sampled_energy_j[gpu.uuid] == pytest.approx(150.0 * (ts[-1] - ts[0]), rel=1e-6)


def test_no_device_gives_reason_not_numbers() -> None:
    meter = EnergyMeter(0, rapl_root=Path("/nonexistent"))
    meter.begin()
    w = meter.end()
    assert w.energy_j is None and w.method is None
    assert "gpus_per_job: 0" in (w.unavailable or "") and "RAPL" in (w.unavailable or "")


# ---- RAPL from files written here --------------------------------------------------------


def _zone(root: Path, name: str, zone: str, uj: int, max_uj: int) -> Path:
    d = root / zone
    d.mkdir(parents=True)
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text(f"{uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def test_rapl_package_dram_and_wraparound(tmp_path: Path) -> None:
    pkg = _zone(tmp_path, "package-0", "intel-rapl:0", 262_143_000_000, 262_143_999_999)
    dram = _zone(tmp_path, "dram", "intel-rapl:0:0", 5_000_000, 65_532_610_987)
    _zone(tmp_path, "core", "intel-rapl:0:1", 0, 100)  # neither package nor dram: ignored
    zones, reason = domains(tmp_path)
    assert reason is None and sorted(z.name for z in zones) == ["dram", "package-0"]
    reader = RaplReader(zones)
    reader.begin()
    (pkg / "energy_uj").write_text("1000000\n")  # wrapped: 999_999 + 1 + 1_000_000 uJ
    (dram / "energy_uj").write_text("7500000\n")
    got = reader.end()
    assert got["cpu_energy_j"] == pytest.approx((999_999 + 1 + 1_000_000) / 1e6)
    assert got["dram_energy_j"] == pytest.approx(2.5)
    assert delta_uj(10, 30, 100) == 20 and delta_uj(90, 10, 99) == 19


def test_rapl_unreadable_and_absent(tmp_path: Path) -> None:
    assert "absent" in (domains(tmp_path / "nope")[1] or "")
    d = _zone(tmp_path, "package-0", "intel-rapl:0", 1, 10)
    (d / "energy_uj").write_text("not a number\n")
    zones, reason = domains(tmp_path)
    assert zones == [] and "no readable RAPL" in (reason or "")


def test_meter_uses_rapl_without_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = _zone(tmp_path, "package-0", "intel-rapl:0", 0, 10**12)
    monkeypatch.setenv("LLEM_POWERCAP_ROOT", str(tmp_path))  # as a container mount would
    meter = EnergyMeter(0)
    meter.begin()
    (pkg / "energy_uj").write_text("3000000\n")
    w = meter.end()
    assert w.method == "rapl" and w.energy_j == pytest.approx(3.0)
    assert "dram_energy_j" not in w.cpu  # no dram zone: not measured, not zero


# ---- FLOPs against a hand count -----------------------------------------------------------


def test_flops_hand_count() -> None:
    cfg = {"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
           "num_key_value_heads": 1, "head_dim": 4, "intermediate_size": 16, "vocab_size": 10}
    shape = shape_of(cfg)
    assert shape == Shape(hidden=8, layers=2, heads=2, kv_heads=1, head_dim=4,
                          intermediate=16, vocab=10)
    # per layer: q 8x8=64, k 8x4=32, v 32, o 64, MLP 3x8x16=384 -> 576; 2 layers -> 1152
    assert shape.linear_params() == 1152
    # 3 prompt tokens, 2 generated: positions fed = 3 + 2 - 1 = 4
    linear = 2 * 1152 * 4  # 9216
    logits = 2 * 8 * 10 * 2  # 320: lm_head once per generated token
    attention = 4 * 2 * 2 * 4 * (1 + 2 + 3 + 4)  # 4 x layers x heads x head_dim x sum(p): 640
    assert request_flops(shape, 3, 2) == linear + logits + attention == 10176
    assert estimate_flops(cfg, [(3, 2), (3, 2)]) == 2 * 10176


def test_flops_is_forward_not_training_count() -> None:
    """For a long decode with short context, FLOPs/token is ~2 x weights (not 6 x)."""
    cfg = {"hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 16,
           "intermediate_size": 5632, "vocab_size": 2048}
    shape = shape_of(cfg)
    per_token = request_flops(shape, 1, 65) / 65
    n = shape.linear_params() + 2048 * 2048
    assert 2.0 <= per_token / n < 2.1
    with pytest.raises(ShapeError, match="mixture of experts"):
        shape_of({"hidden_size": 8, "num_local_experts": 8})
    assert estimate_flops({"hidden_size": 8, "num_local_experts": 8}, [(1, 1)]) is None
    assert estimate_flops(None, [(1, 1)]) is None
    gpt2 = shape_of({"n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257})
    assert not gpt2.gated_mlp and gpt2.intermediate == 3072


# ---- arrival schedules --------------------------------------------------------------------


def test_arrival_schedules() -> None:
    off = Schedule("offline", None)
    assert off.next_pass(3, 5.0) == [5.0, 5.0, 5.0]
    const = Schedule("constant", 4.0)
    assert const.next_pass(3, 10.0) == [10.0, 10.25, 10.5]
    assert const.next_pass(2, 99.0) == [10.75, 11.0]  # continues across passes
    a = Schedule("poisson", 10.0, seed=7).next_pass(2000, 0.0)
    b = Schedule("poisson", 10.0, seed=7).next_pass(2000, 0.0)
    assert a == b and a == sorted(a)  # seeded: the same schedule
    assert Schedule("poisson", 10.0, seed=8).next_pass(5, 0.0) != a[:5]
    assert 1999 / a[-1] == pytest.approx(10.0, rel=0.1)  # mean rate ~10/s
    with pytest.raises(ValueError):
        Schedule("poisson", None)


def test_t_critical_without_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bare GPU node may lack scipy: the table and expansion agree with scipy."""
    import sys

    from scipy import stats

    monkeypatch.setitem(sys.modules, "scipy", None)
    for df in (1, 4, 30, 31, 60, 500):
        assert t_critical(df) == pytest.approx(float(stats.t.ppf(0.975, df)), rel=1e-4)


# ---- environment: the llem commit from .git, as checkouts really lay it out ---------------


def test_git_commit_worktree_and_packed_refs(tmp_path: Path) -> None:
    import subprocess

    from llem.harness.runtime import git_commit

    def git(*args: str, cwd: Path) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=cwd, check=True, capture_output=True, text=True).stdout
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "f").write_text("x")
    git("add", "f", cwd=repo)
    git("commit", "-qm", "c", cwd=repo)
    head = git("rev-parse", "HEAD", cwd=repo).strip()
    assert git_commit.__wrapped__(repo) == head[:12]
    git("pack-refs", "--all", cwd=repo)  # refs/heads/main now only in packed-refs
    assert git_commit.__wrapped__(repo) == head[:12]
    git("worktree", "add", "-q", str(tmp_path / "wt"), "-b", "other", cwd=repo)
    assert git_commit.__wrapped__(tmp_path / "wt") == head[:12]
    assert git_commit.__wrapped__(tmp_path) is None  # not a checkout
