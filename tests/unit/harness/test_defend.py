"""Measurement you can defend, through the harness on the tiny model with a simulated GPU
(the only fake): every row judged with its checks, the idle baseline reused while its check
agrees, warmup shared within a load group, and prefill measured apart from decode."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from llem.backends import GenerateSpec
from llem.config.grid import iter_jobs
from llem.config.load import load_text
from llem.config.models import Measurement
from llem.harness.runner import JobRunner, warm_key, warmup
from llem.measure.meter import EnergyMeter
from llem.store.schema import to_table
from tests.support.fake_gpu import FakeGpu

PROMPTS = ["Explain why the sky is blue.", "Write a haiku about energy.",
           "Summarise: Ray schedules actors on GPUs.", "Count to five."]


class NvmlLikeGpu(FakeGpu):
    """A constant-power simulated GPU that reports its power source and clock events as
    llem.measure.gpu.Gpu.sample does; its counter (100 ms updates) integrates exactly."""

    def __init__(self, watts: float, events: list[str] | None = None) -> None:
        self.watts, self.events = watts, events or []
        super().__init__(time.perf_counter, lambda t: self.watts)

    def _joules(self, t: float) -> float:
        return self.watts * (t - self.origin)

    def sample(self) -> dict[str, Any]:
        return {**super().sample(), "power_source": "instant",
                "clocks_event_reasons": list(self.events)}


def _runner(tiny_model: Path, gpu: FakeGpu) -> JobRunner:
    meter = EnergyMeter(1, gpus=[gpu], rapl_root=Path("/nonexistent"))
    return JobRunner("transformers", {"model": str(tiny_model), "dtype": "float32",
                                      "engine": {}, "gpus": 0}, 1, meter=meter)


def _jobs(tiny_model: Path, grid: str, measurement: str, cycles: int = 1) -> list[Any]:
    return list(iter_jobs(load_text(f"""
name: d
cycles: {cycles}
order: sequential
models: [{tiny_model}]
backends: [transformers]
grid: {{dtype: float32, {grid}}}
dataset: {{num_prompts: 4}}
measurement: {{{measurement}}}
""")))


BASE = ("thermal_gaps: false, idle_baseline_s: 0.5, min_window_s: 1.5, "
        "valid_min_counter_periods: 10, warmup_requests: 12, warmup_cv: 10.0")


def test_rows_are_judged_and_reuse_idle_and_warmup(tiny_model: Path) -> None:
    runner = _runner(tiny_model, NvmlLikeGpu(150.0))
    first, second = _jobs(tiny_model, "batch_size: 2, max_new_tokens: 3", BASE, cycles=2)
    a = runner.run(first.payload(), PROMPTS)
    b = runner.run(second.payload(), PROMPTS)
    for res in (a, b):
        run = res.run
        assert run.status == "ok", run.error
        assert run.energy_invalid_reasons == [] and run.energy_valid is True
        assert run.energy_counter_period_s == pytest.approx(0.1, abs=0.01)
        assert run.window_counter_periods == pytest.approx(run.duration_s / 0.1, rel=0.1)
        assert run.sample_coverage is not None and run.sample_coverage > 0.9
        assert run.power_source == "instant" and run.boundary == "gpu"
        assert run.throttle_s == 0.0 and run.throttle_reasons == []
        assert run.idle_baseline_source == "cached"
        assert all(s["power_source"] == "instant" for s in res.samples)
        for table, rows in (("runs", [run]), ("samples", res.samples)):
            to_table(table, rows)
    assert a.run.idle_baseline_measured is True and a.run.idle_baseline_reason == "first"
    assert b.run.idle_baseline_measured is False and b.run.idle_baseline_reason is None
    assert b.run.idle_check_diff is not None and b.run.idle_check_diff < 0.1
    assert b.run.idle_baseline_age_s is not None and b.run.idle_baseline_age_s > 1.5
    assert b.run.idle_power_w == pytest.approx(150.0, rel=0.02)
    # the same batches ran in the first job's warmup: only the convergence runs again
    assert (a.run.warmup_shared, a.run.warmup_batches_reused) == (False, 0)
    assert (b.run.warmup_shared, b.run.warmup_batches_reused) == (True, 2)
    assert b.run.warmup_requests < a.run.warmup_requests


def test_throttled_and_short_windows_are_invalid(tiny_model: Path) -> None:
    runner = _runner(tiny_model, NvmlLikeGpu(300.0, ["sw_power_cap", "hw_thermal_slowdown"]))
    [job] = _jobs(tiny_model, "batch_size: 4, max_new_tokens: 2",
                  "thermal_gaps: false, idle_baseline_s: 0.3, min_window_s: 0.5, "
                  "warmup_requests: 4")
    run = runner.run(job.payload(), PROMPTS).run
    assert run.status == "ok", run.error
    assert run.energy_valid is False
    codes = [r.split(":")[0] for r in run.energy_invalid_reasons or []]
    assert codes[0] == "short_window" and "throttled" in codes
    assert run.throttle_s == pytest.approx(run.duration_s, rel=0.05)
    assert run.throttle_reasons == ["hw_thermal_slowdown", "sw_power_cap"]


def test_phases_split_prefill_from_decode(tiny_model: Path) -> None:
    runner = _runner(tiny_model, NvmlLikeGpu(200.0))
    [job] = _jobs(tiny_model, "batch_size: 4, max_new_tokens: 6, output_policy: fixed",
                  "thermal_gaps: false, idle_baseline_s: 0.3, min_window_s: 1.0, "
                  "warmup_requests: 8, phases: true")
    res = runner.run(job.payload(), PROMPTS)
    run = res.run
    assert run.status == "ok", run.error
    assert run.prefill_repeats and run.prefill_window_s and run.prefill_window_s >= 1.0
    assert run.prefill_energy_j is not None and run.decode_energy_per_token_j is not None
    per_pass = run.energy_j / run.repeats  # type: ignore[operator]
    in_pass = run.input_tokens / run.repeats  # type: ignore[operator]
    decode_pass = (run.output_tokens - run.num_requests) / run.repeats  # type: ignore[operator]
    assert decode_pass == 4 * 5  # 4 requests, 6 tokens each, less each one's first
    assert run.decode_energy_per_token_j == pytest.approx(
        (per_pass - run.prefill_energy_j) / decode_pass)
    assert run.prefill_energy_per_input_token_j == pytest.approx(
        run.prefill_energy_j / in_pass)
    assert 0 < run.prefill_energy_j < per_pass  # one token costs less than six
    to_table("runs", [run])


def test_warmup_skips_batches_already_warm() -> None:
    seen: list[list[str]] = []

    class Recorder:
        def generate(self, prompts: list[str], spec: GenerateSpec) -> list[object]:
            seen.append(prompts)
            return []

    spec = GenerateSpec(max_new_tokens=1)
    batches = [["a", "b"], ["c", "d"]]
    warm = {warm_key(["a", "b"], spec)}
    ticks = iter(range(1000))
    n, ok = warmup(Recorder(), batches, spec, Measurement(warmup_window=2),  # type: ignore
                   lambda: float(next(ticks)), warm)
    assert seen[0] == ["c", "d"] and all(b == ["a", "b"] for b in seen[1:])
    assert (n, ok) == (2 + 2 * 2, True) and warm_key(["c", "d"], spec) in warm
    other = GenerateSpec(max_new_tokens=2)  # other generation settings: not warm
    seen.clear()
    warmup(Recorder(), batches, other, Measurement(warmup_window=2),  # type: ignore
           lambda: float(next(ticks)), warm)
    assert seen[:2] == batches
