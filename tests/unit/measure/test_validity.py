"""Measurement you can defend: the counter's measured period, clock event reasons and power
source read through the real Gpu code over a simulated NVML, sample coverage, throttle time,
the validity verdict, idle baselines reused and checked, the energy boundary, and the grid
intensity from codecarbon's bundled data. The GPU (and NVML) is the only thing simulated."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llem.config.models import Measurement
from llem.measure import gpu as gpu_mod
from llem.measure.gpu import Gpu, counter_period, event_names
from llem.measure.meter import EnergyMeter
from llem.measure.validity import Checks, judge, power_source, sample_coverage, throttle
from tests.support.fake_gpu import FakeClock, FakeGpu


class ConstGpu(FakeGpu):
    """FakeGpu whose power is a settable constant: its counter integrates it exactly and
    fast (piecewise), still updating only every period_s like NVML's."""

    def __init__(self, clock: FakeClock, watts: float, **kw: Any) -> None:
        self.watts, self._e, self._t = watts, 0.0, clock()
        super().__init__(clock, lambda t: self.watts, **kw)

    def set(self, watts: float) -> None:
        self._joules(self.clock())  # bank the energy so far at the old power
        self.watts = watts

    def _joules(self, t: float) -> float:
        if t > self._t:
            self._e += self.watts * (t - self._t)
            self._t = t
        return self._e if t >= self._t else self._e - self.watts * (self._t - t)


def _meter(clock: FakeClock, gpus: list[Any], m: Measurement | None = None,
           rapl: Path | None = None) -> EnergyMeter:
    meter = EnergyMeter(len(gpus), gpus=gpus, clock=clock, sleep=clock.sleep,
                        rapl_root=rapl or Path("/nonexistent"))
    if m is not None:
        meter.configure(m)
    return meter


# ---- the counter's update period, measured as Zeus does --------------------------------


def test_counter_period_is_measured_not_assumed() -> None:
    clock = FakeClock()
    for period in (0.1, 0.02):
        gpu = ConstGpu(clock, 100.0, period_s=period)
        got = counter_period(gpu.energy_mj, clock, clock.sleep, poll_s=0.001)
        assert got == pytest.approx(period, abs=0.0015)
    stuck = ConstGpu(clock, 0.0)  # a counter that never moves
    assert counter_period(stuck.energy_mj, clock, clock.sleep, timeout_s=1.0) is None
    assert counter_period(lambda: None, clock, clock.sleep) is None
    meter = _meter(clock, [ConstGpu(clock, 80.0, period_s=0.1),
                           ConstGpu(clock, 80.0, uuid="GPU-b", period_s=0.2)])
    assert meter.counter_period_s() == pytest.approx(0.2, abs=0.003)  # the slowest GPU
    assert meter.counter_period_measured


# ---- NVML readings through the real Gpu, over a simulated NVML ------------------------


def _nvml(instant: bool = True, mask: int | None = 0x4 | 0x40, old: bool = False) -> Any:
    def field_values(handle: Any, ids: list[int]) -> list[Any]:
        return [SimpleNamespace(nvmlReturn=0 if instant else 3,
                                value=SimpleNamespace(uiVal=250_000))]

    n = SimpleNamespace(
        NVML_FI_DEV_POWER_INSTANT=186, NVML_TEMPERATURE_GPU=0, NVML_CLOCK_SM=1,
        nvmlDeviceGetFieldValues=field_values,
        nvmlDeviceGetPowerUsage=lambda h: 240_000,
        nvmlDeviceGetTemperature=lambda h, k: 55, nvmlDeviceGetClockInfo=lambda h, k: 1980,
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=99),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=2**30, total=2**36))
    if mask is not None:  # the name since driver 535; older bindings: ...ThrottleReasons
        name = "nvmlDeviceGetCurrentClocksThrottleReasons" if old else \
            "nvmlDeviceGetCurrentClocksEventReasons"
        setattr(n, name, lambda h: mask)
    return n


@pytest.mark.parametrize("instant", [True, False])
def test_gpu_sample_records_power_source_and_clock_events(
        monkeypatch: pytest.MonkeyPatch, instant: bool) -> None:
    monkeypatch.setattr(gpu_mod, "_nvml", _nvml(instant=instant))
    s = Gpu("GPU-x", 0, "H100", handle=object()).sample()
    assert s["power_w"] == (250.0 if instant else 240.0)
    assert s["power_source"] == ("instant" if instant else "average")
    assert s["clocks_event_reasons"] == ["sw_power_cap", "hw_thermal_slowdown"]
    monkeypatch.setattr(gpu_mod, "_nvml", _nvml(mask=0x10, old=True))
    assert Gpu("GPU-x", 0, "H100", handle=object()).sample()["clocks_event_reasons"] == \
        ["sync_boost"]
    monkeypatch.setattr(gpu_mod, "_nvml", _nvml(mask=None))  # the driver cannot say
    assert Gpu("GPU-x", 0, "H100", handle=object()).sample()["clocks_event_reasons"] is None


def test_event_names_follow_nvml_bits() -> None:
    assert event_names(0) == []
    assert event_names(0x1 | 0x8 | 0x80) == ["gpu_idle", "hw_slowdown", "hw_power_brake_slowdown"]
    assert event_names(0x20 | (1 << 40)) == ["sw_thermal_slowdown", "bit_40"]


# ---- coverage, throttle, power source and the verdict ---------------------------------


def _rows(times: list[float], reasons: list[list[str]] | None = None, uuid: str = "G0",
          source: str | None = "instant") -> list[dict[str, Any]]:
    return [{"t_s": t, "gpu_uuid": uuid, "power_w": 100.0, "power_source": source,
             "clocks_event_reasons": reasons[i] if reasons else []}
            for i, t in enumerate(times)]


def test_sample_coverage() -> None:
    full = _rows([i / 10 for i in range(101)])
    assert sample_coverage(full, 10.0, 10.0, 1) == pytest.approx(1.0)
    stalled = _rows([i / 10 for i in range(51)] + [8.0, 8.1, 10.0])  # a 3 s hole
    # 5 s sampled, then one period each after 5.0, 8.0 and 8.1 s: 5.3 s of 10
    assert sample_coverage(stalled, 10.0, 10.0, 1) == pytest.approx(0.53)
    two = full + _rows([0.0, 10.0], uuid="G1")  # the worst GPU counts
    assert sample_coverage(two, 10.0, 10.0, 2) == pytest.approx(0.01)
    assert sample_coverage(full, 10.0, 10.0, 2) == 0.0  # a GPU without samples
    assert sample_coverage([], 10.0, 10.0, 0) is None  # a CPU job


def test_throttle_time_and_reasons_seen() -> None:
    hot, cap = ["hw_thermal_slowdown"], ["sw_power_cap"]
    rows = _rows([0.0, 1.0, 2.0, 3.0, 4.0], [[], hot, hot, cap, []])
    rows += _rows([0.0, 2.5, 4.0], [[], ["hw_slowdown"], []], uuid="G1")  # overlaps G0
    reasons = Measurement().valid_throttle_reasons
    got, seen = throttle(rows, 5.0, reasons)
    assert got == pytest.approx(2.0 + 1.0)  # G0 1-3 s, G1 2.5-4 s: union 1-4 s
    assert seen == ["hw_slowdown", "hw_thermal_slowdown", "sw_power_cap"]
    assert throttle(rows, 5.0, ["sw_power_cap"])[0] == pytest.approx(1.0)
    unknown = [{**r, "clocks_event_reasons": None} for r in rows]
    assert throttle(unknown, 5.0, reasons) == (None, None)


def test_power_source_of_a_row() -> None:
    assert power_source(_rows([0, 1])) == "instant"
    assert power_source(_rows([0, 1]) + _rows([0], source="average", uuid="G1")) == "mixed"
    assert power_source([]) == "counter"
    assert power_source(_rows([0, 1], source=None)) is None


def test_judge_each_check_against_its_threshold() -> None:
    m = Measurement()
    ok = Checks(energy=True, duration_s=10.0, counter_period_s=0.1,
                counter_period_measured=True, sample_coverage=0.98, counter_to_sampled=1.02,
                throttle_s=0.2, warmup_converged=True)
    assert judge(ok, m) == (True, [])
    assert ok.counter_periods == pytest.approx(100.0)
    bad = Checks(energy=True, duration_s=2.0, counter_period_s=0.1,
                 counter_period_measured=True, sample_coverage=0.5, counter_to_sampled=1.3,
                 throttle_s=1.0, warmup_converged=False)
    valid, why = judge(bad, m)
    assert valid is False and [r.split(":")[0] for r in why] == [
        "short_window", "low_sample_coverage", "counter_vs_sampled", "throttled",
        "warmup_not_converged"]
    assert "20.0 counter periods < 50" in why[0]
    loose = Measurement(valid_min_counter_periods=10, valid_min_sample_coverage=0.4,
                        valid_max_counter_sampled_gap=0.5, valid_max_throttle_share=0.6,
                        valid_require_warmup_converged=False)
    assert judge(bad, loose) == (True, [])
    stuck = Checks(energy=True, duration_s=10.0, counter_period_s=None,
                   counter_period_measured=False, sample_coverage=None,
                   counter_to_sampled=None, throttle_s=None)
    assert judge(stuck, m)[1][0].startswith("counter_period_unmeasured")
    assert judge(Checks(False, 10.0, None, True, None, None, None), m) == (None, [])


# ---- idle baselines: per job, per worker, cached with its age and check ---------------


def test_idle_per_job_and_edge_aligned_measure() -> None:
    clock = FakeClock()
    gpu = ConstGpu(clock, 72.0)
    meter = _meter(clock, [gpu], Measurement(idle_baseline="per_job"))
    a = meter.idle_baseline(1.0)
    b = meter.idle_baseline(1.0)
    assert a is not None and b is not None and a.measured and b.measured
    assert a.reason == b.reason == "per_job" and a.mode == "per_job"
    # between two counter updates: exact although 1 s is only 10 of its 100 ms periods
    assert a.power_w[gpu.uuid] == pytest.approx(72.0, rel=1e-3)
    assert a.seconds == pytest.approx(1.0, abs=0.01)


def test_idle_per_worker_is_reused_until_a_new_model() -> None:
    clock = FakeClock()
    gpu = ConstGpu(clock, 72.0)
    meter = _meter(clock, [gpu], Measurement(idle_baseline="per_worker"))
    first = meter.idle_baseline(2.0)
    assert first is not None and first.measured and first.reason == "first"
    gpu.set(120.0)
    clock.sleep(30.0)
    t0 = clock()
    again = meter.idle_baseline(2.0)
    assert clock() == t0  # nothing measured
    assert again is not None and not again.measured and again.reason is None
    assert again.power_w[gpu.uuid] == pytest.approx(72.0, rel=1e-3)
    assert again.age_s is not None and 30.0 < again.age_s < 33.0  # measured, then 30 s
    assert again.columns()["idle_baseline_source"] == "per_worker"
    meter.loaded()
    fresh = meter.idle_baseline(2.0)
    assert fresh is not None and fresh.reason == "model_loaded"
    assert fresh.power_w[gpu.uuid] == pytest.approx(120.0, rel=1e-3)


def test_idle_cached_reused_while_the_check_agrees_and_not_after() -> None:
    clock = FakeClock()
    gpu = ConstGpu(clock, 100.0)
    m = Measurement(idle_check_s=1.0, idle_check_tolerance=0.1, idle_max_age_s=300.0)
    meter = _meter(clock, [gpu], m)
    assert meter.idle_baseline(5.0).reason == "first"  # type: ignore[union-attr]
    gpu.set(105.0)  # within 10%: reused, the check recorded
    clock.sleep(10.0)
    t0 = clock()
    used = meter.idle_baseline(5.0)
    assert used is not None and not used.measured and used.mode == "cached"
    assert clock() - t0 < 1.5  # the check only, not another 5 s
    assert used.check_power_w == pytest.approx(105.0, rel=1e-3)
    assert used.check_diff == pytest.approx(0.05, rel=1e-2)
    assert used.power_w[gpu.uuid] == pytest.approx(100.0, rel=1e-3)
    gpu.set(130.0)  # 30% off: measured again
    redo = meter.idle_baseline(5.0)
    assert redo is not None and redo.measured and redo.reason == "check"
    assert redo.power_w[gpu.uuid] == pytest.approx(130.0, rel=1e-3)
    assert redo.check_diff == pytest.approx(0.3, rel=1e-2)
    clock.sleep(301.0)  # too old: measured again without a check
    old = meter.idle_baseline(5.0)
    assert old is not None and old.reason == "age" and old.check_power_w is None
    assert meter.idle_baseline(0) is None  # off


# ---- the boundary --------------------------------------------------------------------


def _zone(root: Path, name: str, zone: str) -> Path:
    d = root / zone
    d.mkdir(parents=True)
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text("0\n")
    (d / "max_energy_range_uj").write_text(f"{10**15}\n")
    return d


def test_boundary_node_adds_rapl_and_the_facility_estimate(tmp_path: Path) -> None:
    from llem.harness.result import energy_columns

    pkg, dram = _zone(tmp_path, "package-0", "intel-rapl:0"), _zone(tmp_path, "dram",
                                                                     "intel-rapl:0:0")
    clock = FakeClock()
    gpu = ConstGpu(clock, 300.0)
    m = Measurement(boundary="node", pue=1.2, idle_baseline="per_job")
    meter = _meter(clock, [gpu], m, rapl=tmp_path)
    meter.idle_baseline(1.0)
    meter.begin(10.0, thread=False)
    for _ in range(100):
        clock.sleep(0.1)
        meter.sampler.take()  # type: ignore[union-attr]
    (pkg / "energy_uj").write_text(f"{500 * 10**6}\n")  # 500 J
    (dram / "energy_uj").write_text(f"{100 * 10**6}\n")  # 100 J
    w = meter.end()
    gpu_j = w.gpu_total_j
    assert gpu_j == pytest.approx(3000.0, abs=2 * 0.1 * 300)
    assert w.recorded_boundary == "node" and w.energy_j == pytest.approx(gpu_j + 600.0)
    cols = energy_columns(w, out_tok=1000, n_req=10, m=m)
    assert cols["boundary"] == "node" and cols["gpu_energy_j"] == gpu_j
    assert cols["energy_facility_j_estimate"] == pytest.approx((gpu_j + 600.0) * 1.2)
    assert cols["energy_per_token_j"] == pytest.approx((gpu_j + 600.0) / 1000)
    assert cols["energy_valid"] is True and cols["energy_invalid_reasons"] == []
    assert cols["window_counter_periods"] == pytest.approx(100.0, rel=0.02)
    assert cols["sample_coverage"] == pytest.approx(1.0)
    gpu_cols = energy_columns(w, out_tok=1000, n_req=10, m=Measurement())
    assert gpu_cols["boundary"] == "node"  # the window was opened with node


def test_boundary_node_without_rapl_has_no_energy_but_an_estimate() -> None:
    from llem.harness.result import energy_columns

    clock = FakeClock()
    m = Measurement(boundary="node")
    meter = _meter(clock, [ConstGpu(clock, 300.0)], m)
    meter.begin(10.0, thread=False)
    clock.sleep(10.0)
    w = meter.end()
    cols = energy_columns(w, out_tok=10, n_req=1, m=m)
    assert cols["energy_j"] is None and cols["gpu_energy_j"] is not None
    assert "boundary node needs RAPL" in cols["energy_unavailable"]
    assert cols["energy_valid"] is None and cols["cpu_energy_j"] is None
    assert cols["cpu_energy_j_estimate"] is not None and cols["cpu_energy_j_estimate"] >= 0
    assert "codecarbon" in cols["cpu_estimate_method"]


def test_gpu_boundary_is_the_default_and_unchanged() -> None:
    from llem.harness.result import energy_columns

    clock = FakeClock()
    meter = _meter(clock, [ConstGpu(clock, 200.0)], Measurement(idle_baseline="per_job"))
    meter.idle_baseline(1.0)
    meter.begin(10.0, thread=False)
    for _ in range(5):  # 0.5 s: a short window with too few samples for 10 Hz
        clock.sleep(0.1)
        meter.sampler.take()  # type: ignore[union-attr]
    w = meter.end()
    cols = energy_columns(w, out_tok=10, n_req=1)
    assert cols["boundary"] == "gpu" and cols["energy_facility_j_estimate"] is None
    assert cols["energy_valid"] is False
    assert cols["energy_invalid_reasons"][0].startswith("short_window: 5.0 counter periods")
    assert cols["idle_baseline_source"] == "per_job" and cols["idle_baseline_measured"]


# ---- carbon intensity from codecarbon's bundled data ----------------------------------


def test_grid_intensity_from_codecarbon() -> None:
    pytest.importorskip("codecarbon")
    from codecarbon.input import DataSource

    from llem.measure.carbon import grid_intensity

    fra = DataSource().get_global_energy_mix_data()["FRA"]["carbon_intensity"]
    value, source = grid_intensity(Measurement(country="FRA"))
    assert value == pytest.approx(fra) and source is not None
    assert "global energy mix: FRA (France" in source and source.startswith("codecarbon ")
    df = DataSource().get_cloud_emissions_data()
    want = float(df.loc[(df.provider == "gcp") & (df.region == "europe-west1")]["impact"].item())
    value, source = grid_intensity(Measurement(cloud={"provider": "gcp",
                                                      "region": "europe-west1"}))
    assert value == pytest.approx(want) and "gcp europe-west1" in (source or "")
    for m in (Measurement(country="XXX"),
              Measurement(cloud={"provider": "aws", "region": "us-east-1"})):
        value, source = grid_intensity(m)
        assert value is None and (source or "").startswith("unavailable: ")
    assert grid_intensity(Measurement(grid_intensity_g_per_kwh=300.0)) == \
        (300.0, "given: measurement.grid_intensity_g_per_kwh")
    assert grid_intensity(Measurement()) == (None, None)


def test_co2_uses_the_looked_up_intensity() -> None:
    pytest.importorskip("codecarbon")
    from llem.harness.result import energy_columns
    from llem.measure.carbon import country_intensity

    clock = FakeClock()
    m = Measurement(country="FRA")
    meter = _meter(clock, [ConstGpu(clock, 360.0)], m)
    meter.begin(10.0, thread=False)
    clock.sleep(10.0)
    w = meter.end()
    cols = energy_columns(w, out_tok=10, n_req=1)  # the window's settings
    g = country_intensity("FRA")[0]
    assert cols["grid_intensity_g_per_kwh"] == pytest.approx(g)
    assert cols["co2_estimate_g"] == pytest.approx(cols["energy_j"] / 3.6e6 * g)
    assert "FRA" in cols["grid_intensity_source"]


def test_measurement_settings_refuse_mistakes() -> None:
    from pydantic import ValidationError

    for bad in ({"country": "fr"}, {"country": "FRA", "grid_intensity_g_per_kwh": 3.0},
                {"cloud": {"provider": "gcp"}}, {"pue": 1.3},
                {"valid_throttle_reasons": ["too_hot"]}, {"idle_baseline": "sometimes"}):
        with pytest.raises(ValidationError):
            Measurement(**bad)  # type: ignore[arg-type]


def test_new_settings_keep_the_job_ids_of_points_without_them() -> None:
    from llem.config.job import hashed
    from llem.config.models import Point

    p = Point(backend="noop", model="m")
    dumped = hashed(p)["measurement"]
    for key in ("idle_baseline", "boundary", "pue", "country", "cloud", "phases",
                "warmup_share", "valid_min_counter_periods", "valid_throttle_reasons"):
        assert key not in dumped
    node = Point(backend="noop", model="m", measurement=Measurement(boundary="node"))
    assert hashed(node)["measurement"]["boundary"] == "node"
    assert Point.model_validate(node.model_dump(mode="json")) == node
