"""Thermal gaps against a simulated GPU: the wait logic is llem's own; only the GPU (which this
machine lacks) is simulated, cooling exponentially in simulated time."""

from __future__ import annotations

import math

import pytest

from llem.config.models import Measurement
from llem.harness.runner import JobRunner
from llem.measure.thermal import ThermalGaps


class SimGpu:
    """Newton cooling towards idle: T(t) = idle + (T0 - idle) exp(-t / tau); power likewise."""

    def __init__(self, idle_c: float = 35.0, idle_w: float = 70.0, tau_s: float = 10.0) -> None:
        self.now = 0.0
        self.idle_c, self.idle_w, self.tau = idle_c, idle_w, tau_s
        self.hot_c, self.hot_w, self.heated_at = idle_c, idle_w, 0.0
        self.reads = 0

    def heat(self, temp_c: float, power_w: float) -> None:
        self.hot_c, self.hot_w, self.heated_at = temp_c, power_w, self.now

    def read(self) -> dict[str, float]:
        self.reads += 1
        f = math.exp(-(self.now - self.heated_at) / self.tau)
        return {"temperature_c": self.idle_c + (self.hot_c - self.idle_c) * f,
                "power_w": self.idle_w + (self.hot_w - self.idle_w) * f}

    def sleep(self, s: float) -> None:
        self.now += s


def gaps_for(*gpus: SimGpu) -> ThermalGaps:
    clock = gpus[0]

    def sleep(s: float) -> None:
        for g in gpus:
            g.sleep(s)

    return ThermalGaps(lambda: [g.read() for g in gpus], clock=lambda: clock.now, sleep=sleep)


def test_waits_until_back_near_idle() -> None:
    gpu = SimGpu(tau_s=10.0)
    gaps = gaps_for(gpu)  # the worker starts idle: 35 C, 70 W
    gpu.heat(65.0, 300.0)  # a job just ended
    m = Measurement(gap_temp_margin_c=3.0, gap_power_margin_w=15.0, gap_poll_s=0.5)
    gap = gaps.wait(m)
    # temperature is the slower one: 30 * exp(-t/10) <= 3  ->  t >= 10 ln 10 = 23.03 s;
    # power: 230 * exp(-t/10) <= 15 -> t >= 27.3 s. Polled every 0.5 s -> 27.5 s.
    t_power = 10 * math.log(230 / 15)
    assert gap.gap_s == pytest.approx(math.ceil(t_power / 0.5) * 0.5)
    assert gap.reached is True
    assert gap.target_temperature_c == pytest.approx(38.0)
    assert gap.target_power_w == pytest.approx(85.0)
    assert gap.start_temperature_c == pytest.approx(35 + 30 * math.exp(-27.5 / 10))
    assert gap.start_temperature_c <= 38.0 and gap.start_power_w <= 85.0


def test_the_wait_is_bounded_and_says_so() -> None:
    gpu = SimGpu()
    gaps = gaps_for(gpu)
    gpu.heat(80.0, 400.0)
    gap = gaps.wait(Measurement(gap_max_s=5.0, gap_poll_s=2.0))
    assert gap.gap_s == pytest.approx(5.0)  # 2 + 2 + 1: the last sleep is cut to the bound
    assert gap.reached is False
    assert gap.start_temperature_c == pytest.approx(35 + 45 * math.exp(-0.5))


def test_no_gaps_records_the_start_temperature_without_waiting() -> None:
    gpu = SimGpu()
    gaps = gaps_for(gpu)
    gpu.heat(70.0, 350.0)
    gap = gaps.wait(Measurement(thermal_gaps=False))
    assert (gap.gap_s, gap.reached) == (0.0, None)
    assert gap.start_temperature_c == pytest.approx(70.0) and gpu.now == 0.0


def test_an_idle_gpu_starts_at_once_and_the_coolest_state_is_remembered() -> None:
    gpu = SimGpu()
    gaps = gaps_for(gpu)
    assert gaps.wait(Measurement()).gap_s == 0.0
    gpu.heat(30.0, 60.0)  # cooler than at the worker's start: the new reference
    gpu.now += 1000
    gaps.wait(Measurement())
    assert gaps.coolest[0]["temperature_c"] == pytest.approx(35.0)
    gpu.idle_c = 30.0
    gpu.heat(30.0, 60.0)
    gaps.wait(Measurement())
    assert gaps.coolest[0]["temperature_c"] == pytest.approx(30.0)


def test_absolute_target_and_several_gpus() -> None:
    a, b = SimGpu(tau_s=5.0), SimGpu(tau_s=20.0)
    gaps = gaps_for(a, b)
    a.heat(60.0, 70.0)
    b.heat(60.0, 70.0)
    gap = gaps.wait(Measurement(gap_idle_temp_c=45.0, gap_poll_s=1.0))
    # the slower GPU decides: 25 exp(-t/20) <= 10 -> t >= 20 ln 2.5 = 18.3 s -> 19 s
    assert gap.gap_s == pytest.approx(19.0)
    assert gap.target_temperature_c == 45.0
    assert gap.start_power_w == pytest.approx(140.0)  # two GPUs' power summed


def test_a_failing_source_records_nothing_and_never_waits() -> None:
    def broken() -> list[dict[str, float]]:
        raise RuntimeError("NVML fell over")

    gap = ThermalGaps(broken).wait(Measurement())
    assert gap.gap_s is None and gap.start_temperature_c is None


def test_the_harness_waits_before_each_job_and_records_the_gap(llem_cache: object) -> None:
    from llem.config.grid import iter_jobs
    from llem.config.load import load_text

    loaded = load_text("name: t\nmodels: [none]\nbackends: [noop]\ncycles: 2\n"
                       "grid: {max_new_tokens: 2}\nmeasurement: {warmup_requests: 0}\n")
    jobs = list(iter_jobs(loaded))
    runner = JobRunner("noop", {"model": "none", "dtype": "auto"}, 0)
    gpu = SimGpu()
    runner.thermal = gaps_for(gpu)
    first = runner.run(jobs[0].payload(), ["a b", "c d"]).run
    assert first.status == "ok" and first.gap_s == 0.0
    assert first.start_temperature_c == pytest.approx(35.0)
    gpu.heat(50.0, 70.0)  # the first job heated the GPU
    second = runner.run(jobs[1].payload(), ["a b", "c d"]).run
    assert second.gap_reached is True
    assert second.gap_s == pytest.approx(math.ceil(10 * math.log(5) / 0.5) * 0.5)
    assert second.start_temperature_c <= 38.0


def test_power_target_is_idle_with_the_model_loaded() -> None:
    """Measured on an H100: 70 W cold, ~120 W idle once a CUDA context exists. A target from
    before the load (70 + 15 W) would never be reached; after context_created the target is
    the loaded idle power, and a cooled GPU starts its job without waiting out gap_max_s."""
    gpu = SimGpu(idle_c=35.0, idle_w=70.0, tau_s=10.0)
    gaps = gaps_for(gpu)          # worker start, no context: 35 C, 70 W
    gpu.idle_w = 120.0            # the model loads: idle power with a context
    gpu.heat(35.0, 120.0)
    gaps.context_created()
    gpu.heat(65.0, 300.0)         # a job ends
    m = Measurement(gap_temp_margin_c=3.0, gap_power_margin_w=15.0, gap_poll_s=0.5,
                    gap_max_s=60.0)
    gap = gaps.wait(m)
    assert gap.reached is True
    assert gap.target_power_w == pytest.approx(135.0)
    assert gap.target_temperature_c == pytest.approx(38.0)
    # power: 180 exp(-t/10) <= 15 -> 24.8 s; temperature: 30 exp(-t/10) <= 3 -> 23.0 s
    assert gap.gap_s == pytest.approx(math.ceil(10 * math.log(180 / 15) / 0.5) * 0.5)
    assert gap.gap_s < 30.0
    old = SimGpu(idle_c=35.0, idle_w=70.0, tau_s=10.0)
    without = gaps_for(old)       # the same story without context_created
    old.idle_w = 120.0
    old.heat(65.0, 300.0)
    stuck = without.wait(m)
    assert stuck.reached is False and stuck.gap_s == pytest.approx(60.0)
