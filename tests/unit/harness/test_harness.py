"""The harness on the tiny model through the real transformers backend, with a simulated GPU
(the only fake): minimum window and repeats, warmup convergence, idle baseline, arrivals,
FLOPs and the rows' per-token figures."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from llem.config.grid import iter_jobs
from llem.config.load import load_text
from llem.harness.runner import JobRunner
from llem.measure.meter import EnergyMeter
from llem.models.flops import estimate_flops
from llem.store.schema import to_table
from tests.support.fake_gpu import FakeGpu

PROMPTS = ["Explain why the sky is blue.", "Write a haiku about energy.",
           "Summarise: Ray schedules actors on GPUs.", "Count to five."]


def _runner(tiny_model: Path, gpu: FakeGpu | None) -> JobRunner:
    meter = EnergyMeter(1, gpus=[gpu] if gpu else [], rapl_root=Path("/nonexistent"))
    return JobRunner("transformers", {"model": str(tiny_model), "dtype": "float32",
                                      "engine": {}, "gpus": 0}, 1, meter=meter)


def _jobs(tiny_model: Path, grid: str, measurement: str):
    return list(iter_jobs(load_text(f"""
name: h
models: [{tiny_model}]
backends: [transformers]
grid: {{dtype: float32, {grid}}}
dataset: {{num_prompts: 4}}
measurement: {{{measurement}}}
""")))


def test_min_window_repeats_and_per_token_figures(tiny_model: Path) -> None:
    gpu = FakeGpu(time.perf_counter, lambda t: 200.0)
    runner = _runner(tiny_model, gpu)
    [job] = _jobs(tiny_model, "batch_size: 2, max_new_tokens: 4, output_policy: fixed",
                  "warmup_requests: 2, idle_baseline_s: 0.3, min_window_s: 3.0, "
                  "thermal_gaps: false")
    res = runner.run(job.payload(), PROMPTS)
    run = res.run
    assert run.status == "ok", run.error
    assert run.repeats > 1 and run.min_window_reached and run.duration_s >= 3.0
    assert run.num_requests == 4 * run.repeats == len(res.requests)
    assert run.output_tokens == 4 * 4 * run.repeats  # fixed output: 4 tokens each
    assert run.energy_j == pytest.approx(200.0 * run.duration_s, abs=2 * 0.1 * 200)
    assert run.energy_per_token_j == pytest.approx(run.energy_j / run.output_tokens)
    assert run.energy_per_request_j == pytest.approx(run.energy_j / run.num_requests)
    assert run.tokens_per_s == pytest.approx(run.output_tokens / run.duration_s)
    assert run.idle_power_w == pytest.approx(200.0, rel=0.1)
    assert run.idle_s == pytest.approx(0.3, abs=0.1) and run.idle_just_worked is True
    assert run.energy_counter_to_sampled == pytest.approx(1.0, abs=0.25)
    assert run.min_window_s == 3.0 and run.warmup_requests == 2
    reps = {r["repeat"] for r in res.requests}
    assert reps == set(range(run.repeats))
    assert len(res.samples) >= 5
    cfg = runner.backend.model_config  # type: ignore[union-attr]
    flops = estimate_flops(cfg, [(r["input_tokens"], r["output_tokens"])
                                 for r in res.requests])
    assert run.flops_estimate == flops and flops > 0
    from llem.harness.runner import local_config

    assert estimate_flops(local_config(str(tiny_model)), [(5, 4)]) == \
        estimate_flops(cfg, [(5, 4)])
    assert local_config("org/hub-id") is None and local_config(None) is None
    assert run.tflops_per_s_estimate == pytest.approx(flops / 1e12 / run.duration_s)
    # the store's fixed schemas take them
    for table, rows in (("runs", [run]), ("requests", res.requests), ("samples", res.samples)):
        to_table(table, rows)


def test_default_min_window_follows_the_energy_source(tiny_model: Path) -> None:
    """No GPU counter: no minimum (one pass); the default with a GPU is 10 s."""
    from llem.harness.runner import DEFAULT_GPU_MIN_WINDOW_S, min_window

    runner = _runner(tiny_model, None)
    [job] = _jobs(tiny_model, "batch_size: 4, max_new_tokens: 2", "warmup_requests: 0")
    run = runner.run(job.payload(), PROMPTS).run
    assert run.status == "ok" and run.repeats == 1 and run.min_window_s == 0.0
    assert run.idle_power_w is None and run.energy_j is None
    gpu_meter = EnergyMeter(1, gpus=[FakeGpu(time.perf_counter, lambda t: 1.0)],
                            rapl_root=Path("/nonexistent"))
    assert min_window(job.point.measurement, gpu_meter) == DEFAULT_GPU_MIN_WINDOW_S == 10.0


def test_warmup_converges_or_hits_the_cap(tiny_model: Path) -> None:
    runner = _runner(tiny_model, None)
    loose, strict = _jobs(tiny_model, "batch_size: 1, max_new_tokens: 2",
                          "warmup_requests: 12, warmup_window: 3, warmup_cv: [10.0, 1.0e-9]")
    if loose.point.measurement.warmup_cv != 10.0:
        loose, strict = strict, loose
    a = runner.run(loose.payload(), PROMPTS).run
    # every batch once (4 prompts at batch 1), then the first full convergence window
    assert a.warmup_converged is True and a.warmup_requests == 4 + 3
    b = runner.run(strict.payload(), PROMPTS).run
    assert b.warmup_converged is False and b.warmup_requests == 12  # the cap
    from llem.backends import GenerateSpec
    from llem.config.models import Measurement
    from llem.harness.runner import warmup

    never = Measurement(warmup_cv=1e-12)  # default cap: a pass + 10 batches, of any size
    assert warmup(runner.backend, [PROMPTS[:2], PROMPTS[2:]], GenerateSpec(max_new_tokens=1),
                  never, time.perf_counter) == (4 + 20, False)
    assert warmup(runner.backend, [PROMPTS[:2]], GenerateSpec(max_new_tokens=1),
                  Measurement(warmup_requests=0), time.perf_counter) == (0, None)


def test_warmup_runs_every_batch_of_the_window_first() -> None:
    """Each input shape the window will meet runs once in warmup (first-time kernel costs
    stay out of the window), then the first batch repeats until its latency settles."""
    from llem.backends import GenerateSpec
    from llem.config.models import Measurement
    from llem.harness.runner import warmup

    seen: list[list[str]] = []

    class Recorder:
        def generate(self, prompts: list[str], spec: GenerateSpec) -> list[object]:
            seen.append(prompts)
            return []

    ticks = iter(range(1000))
    batches = [["a", "b"], ["c", "d"], ["e"]]
    n, ok = warmup(Recorder(), batches, GenerateSpec(max_new_tokens=1),  # type: ignore[arg-type]
                   Measurement(warmup_window=2), lambda: float(next(ticks)))
    assert seen[:3] == batches and all(b == ["a", "b"] for b in seen[3:])
    assert (n, ok) == (5 + 2 * 2, True)  # constant latency: converged after 2
    seen.clear()
    n, ok = warmup(Recorder(), batches, GenerateSpec(max_new_tokens=1),  # type: ignore[arg-type]
                   Measurement(warmup_requests=4, warmup_cv=1e-12), lambda: 0.0)
    assert seen == [["a", "b"], ["c", "d"]] and (n, ok) == (4, False)  # the cap cuts the pass


def test_constant_arrivals_and_concurrency(tiny_model: Path) -> None:
    runner = _runner(tiny_model, None)
    [job] = _jobs(tiny_model, "batch_size: 4, max_new_tokens: 2",
                  "warmup_requests: 0, arrival: constant, request_rate: 20, "
                  "max_concurrency: 2")
    res = runner.run(job.payload(), PROMPTS * 2)
    run, reqs = res.run, res.requests
    assert run.status == "ok", run.error
    assert run.arrival == "constant" and run.request_rate == 20.0
    arrivals = [r["arrival_s"] - reqs[0]["arrival_s"] for r in reqs]
    assert arrivals == pytest.approx([i / 20 for i in range(8)], abs=1e-9)
    assert 0 <= reqs[0]["arrival_s"] < 0.1  # the schedule starts with the window
    assert run.arrival_rate_achieved == pytest.approx(20.0)
    for r in reqs:  # never served before it arrived; e2e = wait + service
        assert r["start_s"] >= r["arrival_s"] - 1e-9 and r["wait_s"] >= -1e-9
        assert r["e2e_latency_s"] == pytest.approx(r["wait_s"] + r["latency_s"])
    per_batch: dict[int, int] = {}
    for r in reqs:
        per_batch[r["batch_index"]] = per_batch.get(r["batch_index"], 0) + 1
    assert max(per_batch.values()) <= 2  # the concurrency limit caps each dispatch


def test_bad_arrival_config_is_a_validation_error(tiny_model: Path) -> None:
    from llem.errors import UserError

    with pytest.raises(UserError, match="request_rate"):
        _jobs(tiny_model, "batch_size: 1", "request_rate: 0")
    with pytest.raises(UserError, match="arrival"):
        _jobs(tiny_model, "batch_size: 1", "arrival: bursty")


def test_switch_closes_the_model_and_loads_the_next(tiny_model: Path) -> None:
    """A reused worker (llem.scheduler.pool): a job of another load group closes the transformers
    model and loads the new one in the same process; each load is counted once."""
    from llem.harness.runner import load_of

    runner = _runner(tiny_model, None)
    [f32] = _jobs(tiny_model, "batch_size: 1, max_new_tokens: 2", "warmup_requests: 0")
    [bf16] = [j for j in iter_jobs(load_text(f"""
name: h
models: [{tiny_model}]
backends: [transformers]
grid: {{dtype: bfloat16, batch_size: 1, max_new_tokens: 2}}
dataset: {{num_prompts: 4}}
measurement: {{warmup_requests: 0}}
"""))]
    rows = []
    for job in (f32, f32, bf16, f32):
        load = {**load_of(job.point), "gpus": 0}  # the fake meter's CPU run, as _runner
        rows.append(runner.run(job.payload(), PROMPTS, load).run)
    assert [r.status for r in rows] == ["ok"] * 4, [r.error for r in rows]
    assert [r.model_loads for r in rows] == [1, 1, 2, 3]
    assert runner.backend is not None and runner.load["dtype"] == "float32"
    assert str(next(runner.backend.model.parameters()).dtype) == "torch.float32"
