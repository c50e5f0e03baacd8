"""The measurement harness: warmup, window, repeats. Written once for every backend.

JobRunner is plain Python (no Ray): the Ray actor in worker.py only calls it, so the same
job runs inline in a unit test.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

from llem.backends import Backend, GenerateSpec, LoadSpec, RequestRecord, load_class
from llem.config.models import BUILTIN_MODELS, Point
from llem.environment import runtime_info
from llem.grid import Job
from llem.measure.gpu import visible_devices
from llem.measure.meter import EnergyMeter, Window
from llem.measure.thermal import ThermalGaps
from llem.results import failed_result, ok_result


def resolve_model(model: str) -> str:
    """llem:<name> is built (once, offline, seeded) in the cache; anything else is passed on."""
    if not model.startswith("llem:"):
        return model
    from llem.tiny_model import build_tiny_model

    name = model[5:]
    cache = Path(os.environ.get("LLEM_CACHE", Path.home() / ".cache" / "llem"))
    return str(build_tiny_model(cache / f"{name}-v1", **BUILTIN_MODELS[name]))


def generate_spec(p: Point) -> GenerateSpec:
    """output_policy fixed is min_new_tokens = max_new_tokens, which every backend maps."""
    min_new = p.max_new_tokens if p.output_policy == "fixed" else p.min_new_tokens
    return GenerateSpec(max_new_tokens=p.max_new_tokens, min_new_tokens=min_new,
                        temperature=p.temperature, top_p=p.top_p, top_k=p.top_k,
                        repetition_penalty=p.repetition_penalty, seed=p.seed,
                        streaming=p.streaming, max_input_tokens=p.max_input_tokens,
                        input_policy=p.input_policy, extra=dict(p.generate))


def batches(prompts: list[str], size: int) -> list[list[str]]:
    return [prompts[i:i + size] for i in range(0, len(prompts), size)]


class JobRunner:
    """Serves one load group: loads the backend once, then measures each job it is given."""

    def __init__(self, backend: str, load: dict[str, Any], gpus_per_job: int,
                 extra_env: dict[str, Any] | None = None) -> None:
        self.backend_name = backend
        self.load = load
        self.gpus_per_job = gpus_per_job
        self.meter = EnergyMeter(gpus_per_job)
        self.thermal = ThermalGaps.for_gpus(self.meter.gpus)
        self.env = {**runtime_info(backend), **(extra_env or {})}
        self.backend: Backend | None = None
        self.load_error: str | None = None
        self.loads = 0
        self.load_s: float | None = None
        self.jobs_run = 0

    def ensure_loaded(self) -> Backend:
        """Load the model on first use; a failed load fails every job of the group fast."""
        if self.backend is None:
            if self.load_error:
                raise RuntimeError(self.load_error)
            t0 = time.perf_counter()
            try:
                spec = LoadSpec(**{**self.load, "model": resolve_model(self.load["model"])})
                self.backend = load_class(self.backend_name)(spec)
            except Exception as exc:
                self.load_error = f"model load failed: {type(exc).__name__}: {exc}"
                raise
            self.load_s = time.perf_counter() - t0
            self.loads += 1
        return self.backend

    def run(self, payload: dict[str, Any], prompts: list[str]) -> dict[str, Any]:
        """Measure one job; an exception becomes a failed result, never a crash."""
        job = Job.from_payload(payload)
        started = time.time()
        gap = self.thermal.wait(job.point.measurement)  # back near idle before this job
        try:
            backend = self.ensure_loaded()
            window, records, info = measure(backend, job, prompts, self.meter)
            result = ok_result(job, window, records, info, self.context(), started)
        except Exception as exc:
            result = failed_result(job, exc, traceback.format_exc(), self.context(), started)
        result["run"].update(gap.columns(), **getattr(self.backend, "load_facts", {}))
        self.jobs_run += 1
        return result

    def context(self) -> dict[str, Any]:
        """Facts recorded with each row; never raises (a failed row must still be written)."""
        try:
            gpus = self.meter.gpu_info()
        except Exception:
            gpus = []
        return {**self.env, "visible_devices": visible_devices(), "model_loads": self.loads,
                "model_load_s": self.load_s,
                "gpus": gpus, "energy_method": self.meter.method,
                "energy_unavailable": self.meter.reason}

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None


def measure(backend: Backend, job: Job, prompts: list[str],
            meter: EnergyMeter) -> tuple[Window, list[tuple[int, int, RequestRecord]],
                                         dict[str, Any]]:
    """Warm up, then run the workload inside one energy window, repeated to min_window_s.

    Returns the window, (repeat, batch, record) triples and facts about the run.
    """
    p, m = job.point, job.point.measurement
    spec = generate_spec(p)
    chunks = batches(prompts, p.batch_size)
    warm = 0
    while warm < m.warmup_requests:
        chunk = chunks[(warm // p.batch_size) % len(chunks)]
        backend.generate(chunk, spec)
        warm += len(chunk)
    idle = meter.idle_baseline(m.idle_baseline_s)
    records: list[tuple[int, int, RequestRecord]] = []
    meter.begin(m.sample_hz)
    t0 = time.perf_counter()
    repeats = 0
    while True:
        for b, chunk in enumerate(chunks):
            out = backend.generate(chunk, spec)
            if len(out) != len(chunk):
                raise RuntimeError(f"backend returned {len(out)} records for {len(chunk)} "
                                   "prompts")
            records.extend((repeats, b, r) for r in out)
        repeats += 1
        if time.perf_counter() - t0 >= m.min_window_s or repeats >= m.max_repeats:
            break
    window = meter.end()
    return window, records, {"t0": t0, "repeats": repeats, "warmup_requests": warm,
                             "idle_power_w": idle}
