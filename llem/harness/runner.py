"""The measurement harness, written once for every backend: idle baseline, warmup until
latency settles, then the workload (served at its arrival pattern) inside one energy window,
repeated until the window is long enough for the energy counter's resolution.

Per worker it keeps what later jobs may reuse: the meter's idle baseline and counter period
(llem.measure.meter) and the batches already warm since the model loaded (warmup_share).

JobRunner is plain Python (no Ray): the Ray actor in worker.py only calls it, so the same
job runs inline in a unit test.
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llem.backends import Backend, GenerateSpec, LoadSpec, load_class
from llem.config.job import Job
from llem.config.models import Measurement, Point
from llem.harness.result import arrival_pattern, failed_result, ok_result
from llem.harness.runtime import runtime_info
from llem.harness.server.level import measure_level
from llem.harness.server.proctree import StopReport
from llem.harness.server.rows import level_result
from llem.harness.server.served import ServedModel
from llem.harness.workload import Schedule, Served, dispatch
from llem.measure.gpu import visible_devices
from llem.measure.meter import EnergyMeter, Window
from llem.measure.stats import cv
from llem.measure.thermal import ThermalGaps
from llem.models.builtin import is_builtin, resolve_model
from llem.models.flops import estimate_flops
from llem.store.run_row import Result

DEFAULT_GPU_MIN_WINDOW_S = 10.0
DEFAULT_WARMUP_BATCHES = 10


def resolved_spec(load: dict[str, Any]) -> LoadSpec:
    """The load spec with every built-in llem:<name> model built and named by its folder:
    the model, and engine values that name a model (an assistant model, a draft)."""
    engine = {k: resolve_model(v) if isinstance(v, str) and is_builtin(v) else v
              for k, v in load.get("engine", {}).items()}
    fields = {k: v for k, v in load.items() if k not in SERVER_LOAD_KEYS}
    return LoadSpec(**{**fields, "model": resolve_model(load["model"]), "engine": engine})


def generate_spec(p: Point) -> GenerateSpec:
    """output_policy fixed is min_new_tokens = max_new_tokens, which every backend maps."""
    min_new = p.max_new_tokens if p.output_policy == "fixed" else p.min_new_tokens
    return GenerateSpec(max_new_tokens=p.max_new_tokens, min_new_tokens=min_new,
                        temperature=p.temperature, top_p=p.top_p, top_k=p.top_k,
                        repetition_penalty=p.repetition_penalty, seed=p.seed,
                        streaming=p.streaming, max_input_tokens=p.max_input_tokens,
                        input_policy=p.input_policy, extra=dict(p.generate))


SERVER_LOAD_KEYS = ("mode", "startup_timeout_s")  # load_of's keys a LoadSpec does not take


def load_of(p: Point) -> dict[str, Any]:
    """What a worker loads for a point (LoadSpec fields): the same for a whole load group."""
    load: dict[str, Any] = {"model": p.model, "dtype": p.dtype, "engine": dict(p.engine),
                            "gpus": p.resources.gpus_per_job}
    if p.mode == "server" and p.server is not None:  # a server, kept across the group
        load.update(mode="server", startup_timeout_s=p.server.startup_timeout_s)
    return load


class JobRunner:
    """Serves one load group: loads the backend once, then measures each job it is given."""

    def __init__(self, backend: str, load: dict[str, Any], gpus_per_job: int,
                 extra_env: dict[str, Any] | None = None,
                 meter: EnergyMeter | None = None) -> None:
        self.backend_name = backend
        self.load = load
        self.gpus_per_job = gpus_per_job
        self.meter = meter or EnergyMeter(gpus_per_job)
        self.thermal = ThermalGaps.for_gpus(self.meter.gpus)
        self.env = {**runtime_info(backend), **(extra_env or {})}
        self.backend: Backend | ServedModel | None = None
        self.last_stop: dict[str, Any] = {}  # the previous server's stop (server mode)
        self.load_error: str | None = None
        self.loads = 0
        self.load_s: float | None = None
        self.jobs_run = 0
        self.model_path: str | None = None
        self.warm: set[tuple[Any, ...]] = set()  # batches run since the model loaded

    def switch(self, backend: str, load: dict[str, Any]) -> None:
        """Serve another load group in this process (a reused worker, llem.scheduler.driver): the
        current model is closed and the next job loads the new one. A no-op for the same."""
        if (backend, load) == (self.backend_name, self.load):
            return
        self.close()  # raises if the library cannot let go: the job becomes a failed row
        if backend != self.backend_name:
            self.env = {**self.env, **runtime_info(backend)}
        self.backend_name, self.load = backend, load
        self.load_error, self.load_s, self.model_path = None, None, None

    def ensure_loaded(self) -> Backend | ServedModel:
        """Load the model (server mode: start the server) on first use; a failed load fails
        every job of the group fast."""
        if self.backend is None:
            if self.load_error:
                raise RuntimeError(self.load_error)
            t0 = time.perf_counter()
            try:
                spec = resolved_spec(self.load)
                self.model_path = spec.model
                if self.load.get("mode") == "server":
                    self.backend = ServedModel(
                        self.backend_name, {**self.load, "model": spec.model,
                                            "engine": spec.engine}, self.gpus_per_job,
                        float(self.load.get("startup_timeout_s") or 600.0))
                else:
                    self.backend = load_class(self.backend_name)(spec)
            except Exception as exc:
                self.load_error = f"model load failed: {type(exc).__name__}: {exc}"
                raise
            self.load_s = time.perf_counter() - t0
            self.loads += 1
            self.warm = set()
            self.meter.loaded()
            self.meter.worked()
            self.thermal.context_created()
        return self.backend

    def run(self, payload: dict[str, Any], prompts: list[str],
            load: dict[str, Any] | None = None) -> Result:
        """Measure one job; an exception becomes a failed result, never a crash. load (a
        reused worker): the job's load spec, switched to first if it differs."""
        job = Job.from_payload(payload)
        started = time.time()
        self.meter.configure(job.point.measurement)
        gap = self.thermal.wait(job.point.measurement)  # back near idle before this job
        try:
            if load is not None:
                self.switch(job.point.backend, load)
            backend = self.ensure_loaded()
            if isinstance(backend, ServedModel):
                level = measure_level(backend, job, prompts, self.meter)
                result = level_result(job, level, self.context(), started)
            else:
                cfg = getattr(backend, "model_config", None) or local_config(self.model_path)
                window, records, info = measure(backend, job, prompts, self.meter, cfg,
                                                warm=self.warm)
                result = ok_result(job, window, records, info, self.context(), started)
        except Exception as exc:
            result = failed_result(job, exc, traceback.format_exc(), self.context(), started)
            if isinstance(self.backend, ServedModel) and not self.backend.alive():
                self.close()  # a dead server: the next job of the group starts a new one
        result.run.update({**gap.columns(), **getattr(self.backend, "load_facts", {}),
                           **self.last_stop})
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
            report = self.backend.close()
            self.backend = None
            if isinstance(report, StopReport):  # recorded with the next group's rows
                self.last_stop = {"previous_server_stop_s": report.stop_s,
                                  "previous_server_gpu_memory_released":
                                  report.gpu_memory_released,
                                  "previous_server_gpu_check": report.gpu_check}


def min_window(m: Measurement, meter: EnergyMeter) -> float:
    """The configured minimum, or by default 10 s when a GPU counter measures the job (its
    ~100 ms update period is then under 1% of the window) and 0 otherwise."""
    if m.min_window_s is not None:
        return m.min_window_s
    return DEFAULT_GPU_MIN_WINDOW_S if meter.gpus else 0.0


def warm_key(batch: list[str], spec: GenerateSpec) -> tuple[Any, ...]:
    """What makes a warmup batch the same as one run before: its prompts and generation."""
    return (tuple(batch), repr(spec))


def warmup(backend: Backend, batches: list[list[str]], spec: GenerateSpec, m: Measurement,
           clock: Callable[[], float],
           warm: set[tuple[Any, ...]] | None = None) -> tuple[int, bool | None]:
    """Run every batch of the workload once, then the first batch until its latency
    settles: the CV of the last warmup_window latencies below warmup_cv (converged), or
    warmup_requests requests ran (not converged).

    The pass over every batch keeps first-time costs out of the window: libraries build and
    cache kernels per input shape (on an H100, HF generate paid ~3 s the first time it met a
    new prompt length, then ~0.9 s), and the window repeats exactly these batches. The
    convergence then repeats the same batch, so latencies differ only by the system's state.

    warm (measurement.warmup_share): the batches already run on this worker since its model
    loaded (warm_key); those are left out of the pass, and the ones run are added.

    Returns (requests run, converged); converged is None when warmup is off. The default cap
    is one pass plus DEFAULT_WARMUP_BATCHES batches, so that any batch size can converge; a
    set warmup_requests caps the pass too.
    """
    cap = sum(map(len, batches)) + DEFAULT_WARMUP_BATCHES * len(batches[0]) \
        if m.warmup_requests is None else m.warmup_requests
    if cap == 0:
        return 0, None
    n = 0
    for batch in batches:
        key = warm_key(batch, spec)
        if warm is not None and key in warm:
            continue
        if n + len(batch) > cap:
            break
        backend.generate(batch, spec)
        n += len(batch)
        if warm is not None:
            warm.add(key)
    lat: list[float] = []
    while n < cap:
        t = clock()
        backend.generate(batches[0], spec)
        lat.append(clock() - t)
        n += len(batches[0])
        if len(lat) >= m.warmup_window:
            c = cv(lat[-m.warmup_window:])
            if c is not None and c < m.warmup_cv:
                return n, True
    return n, False


def local_config(model: str | None) -> dict[str, Any] | None:
    """config.json of a model in a local folder (for the FLOPs estimate of backends that do
    not expose their model's config); None for hub ids or unreadable files."""
    if not model:
        return None
    try:
        cfg = json.loads((Path(model) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) else None


def measure(backend: Backend, job: Job, prompts: list[str], meter: EnergyMeter,
            model_config: dict[str, Any] | None = None,
            warm: set[tuple[Any, ...]] | None = None
            ) -> tuple[Window, list[Served], dict[str, Any]]:
    """Idle baseline, warmup, then the workload inside one energy window, repeated until
    the window is at least min_window long (measurement.phases: a prefill-only window of
    the same batches first).

    warm: the batches already run on this worker since its model loaded (JobRunner.warm),
    used and extended when measurement.warmup_share is on.
    Returns the window, the served requests and facts about the run.
    """
    p, m = job.point, job.point.measurement
    spec = generate_spec(p)
    cap = min(p.batch_size, m.max_concurrency or p.batch_size)
    clock = meter.clock
    idle = meter.idle_baseline(m.idle_baseline_s)  # after the thermal gap, before warmup
    batches = [prompts[i:i + cap] for i in range(0, len(prompts), cap)]
    shared = warm if m.warmup_share else None
    reused = sum(1 for b in batches if warm_key(b, spec) in shared) if shared is not None \
        else 0
    warm_n, converged = warmup(backend, batches, spec, m, clock, shared)
    meter.worked()
    floor = min_window(m, meter)
    prefill: Window | None = None
    p_repeats = 0
    if m.phases:  # the same batches, 1 output token each: prefill (and the first token)
        one = dataclasses.replace(spec, max_new_tokens=1, min_new_tokens=1, streaming=False)
        offline = [clock()] * len(prompts)
        meter.begin(m.sample_hz)
        t0 = clock()
        while True:
            dispatch(backend, prompts, offline, cap, one, p_repeats, clock, meter.sleep)
            offline = [clock()] * len(prompts)
            p_repeats += 1
            if clock() - t0 >= floor or p_repeats >= m.max_repeats:
                break
        prefill = meter.end()
    served: list[Served] = []
    schedule = Schedule(arrival_pattern(m), m.request_rate, m.arrival_seed)
    meter.begin(m.sample_hz)
    t0 = clock()
    repeats = 0
    while True:
        arrivals = schedule.next_pass(len(prompts), clock())
        served.extend(dispatch(backend, prompts, arrivals, cap, spec, repeats, clock,
                               meter.sleep))
        repeats += 1
        if clock() - t0 >= floor or repeats >= m.max_repeats:
            break
    window = meter.end()
    flops = estimate_flops(model_config, [(s.record.input_tokens, s.record.output_tokens)
                                          for s in served])
    return window, served, {"t0": t0, "repeats": repeats, "warmup_requests": warm_n,
                            "warmup_converged": converged, "min_window_s": floor,
                            "min_window_reached": window.duration_s >= floor,
                            "flops_estimate": flops, "idle": idle,
                            "arrival_rate_achieved": schedule.achieved_rate(served),
                            "warmup_shared": reused > 0 if shared is not None else False,
                            "warmup_batches_reused": reused,
                            "prefill": prefill, "prefill_repeats": p_repeats}
