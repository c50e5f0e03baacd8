"""Turn a measured window and its request records into a job's Result: its runs row, a
typed record (llem.store.run_row.RunRow) filled field by field, and its requests and samples
rows (plain dicts).

Per-token figures (TTFT, ITL, TPOT) come only from token times a backend observed; where
there are none they are None. Nothing is estimated and reported as measured.
"""

from __future__ import annotations

import json
import time
from itertools import pairwise
from typing import Any

from llem.config.job import Job, canonical
from llem.config.models import Measurement
from llem.credentials import redact
from llem.harness.workload import Served
from llem.measure.carbon import grid_intensity
from llem.measure.meter import Window
from llem.measure.stats import mean, pct, safe_div, summary
from llem.measure.validity import Checks, judge, power_source, sample_coverage, throttle
from llem.store.run_row import Result, RunRow
from llem.store.schema import SCHEMA_VERSION

J_PER_KWH = 3.6e6


def config_columns(job: Job) -> RunRow:
    """A runs row holding the point's parameters; engine args also one column each."""
    p = job.point
    m = p.measurement
    run = RunRow(
        schema_version=SCHEMA_VERSION, campaign=job.campaign, job_id=job.job_id,
        cycle=job.cycle, load_key=job.load_key, cycle_order=job.order,
        order_seed=job.order_seed, timeline_index=job.timeline_index,
        backend=p.backend, model=p.model, dtype=p.dtype, batch_size=p.batch_size,
        max_new_tokens=p.max_new_tokens, min_new_tokens=p.min_new_tokens,
        temperature=p.temperature, top_p=p.top_p, top_k=p.top_k,
        repetition_penalty=p.repetition_penalty, seed=p.seed,
        max_input_tokens=p.max_input_tokens, streaming=p.streaming,
        input_policy=p.input_policy, output_policy=p.output_policy, preset=p.preset,
        num_prompts=p.dataset.num_prompts, dataset_source=p.dataset.source,
        dataset_path=p.dataset.path, gpus_per_job=p.resources.gpus_per_job,
        min_window_s=m.min_window_s, arrival=arrival_pattern(m), request_rate=m.request_rate,
        pue=m.pue,
        max_concurrency=m.max_concurrency,
        engine_json=canonical(p.engine), generate_json=canonical(p.generate),
        point_json=canonical(p.model_dump(mode="json")))
    for k, v in p.engine.items():
        run.engine_columns[f"engine_{k}"] = \
            v if isinstance(v, bool | int | float | str) else json.dumps(v)
    run.mode = p.mode
    s = p.server
    if p.mode == "server" and s is not None:  # the level's settings, on failed rows too
        run.update({"arrival": s.profile, "request_rate": s.rate, "streaming": True,
                    "burstiness": s.burstiness if s.profile == "gamma" else None,
                    "server_concurrency": s.concurrency, "sweep_level": s.sweep_level,
                    "slo_ttft_s": s.slo_ttft_s, "slo_tpot_s": s.slo_tpot_s})
    return run


def arrival_pattern(m: Measurement) -> str:
    return "offline" if m.request_rate is None else m.arrival


def context_columns(run: RunRow, ctx: dict[str, Any]) -> None:
    """The worker's facts (llem.harness.runner.JobRunner.context; {} for a row the driver
    writes) into run."""
    gpus = ctx.get("gpus") or []
    run.host, run.node_id = ctx.get("host"), ctx.get("node_id")
    run.worker_pid = ctx.get("worker_pid")
    run.python_executable, run.env_kind = ctx.get("python_executable"), ctx.get("env_kind")
    run.python_version, run.llem_version = ctx.get("python_version"), ctx.get("llem_version")
    run.llem_commit, run.ray_version = ctx.get("llem_commit"), ctx.get("ray_version")
    run.torch_version = ctx.get("torch_version")
    run.transformers_version = ctx.get("transformers_version")
    run.backend_version, run.cpu_model = ctx.get("backend_version"), ctx.get("cpu_model")
    run.driver_version, run.cuda_version = ctx.get("driver_version"), ctx.get("cuda_version")
    run.model_loads, run.visible_devices = ctx.get("model_loads"), ctx.get("visible_devices")
    run.model_load_s, run.energy_method = ctx.get("model_load_s"), ctx.get("energy_method")
    run.gpu_count = len(gpus)
    run.gpu_name = gpus[0]["name"] if gpus else None
    run.gpu_uuids = [g["uuid"] for g in gpus]
    run.gpu_power_limit_w = gpus[0]["power_limit_w"] if gpus else None
    run.mig_mode = any(g["mig_mode"] for g in gpus) if gpus else None


def request_row(job: Job, i: int, s: Served, t0: float) -> dict[str, Any]:
    r = s.record
    times = r.token_times_s
    ttft = itl = tpot = None
    gaps: list[float] = []
    if times:
        ttft = times[0] - r.start_s
        gaps = [b - a for a, b in pairwise(times)]
        tpot = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None
        itl = mean(gaps)
    return {
        "schema_version": SCHEMA_VERSION, "campaign": job.campaign, "job_id": job.job_id,
        "cycle": job.cycle, "request_index": i, "repeat": s.repeat, "batch_index": s.batch,
        "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
        "arrival_s": s.arrival_s - t0, "wait_s": r.start_s - s.arrival_s,
        "start_s": r.start_s - t0, "end_s": r.end_s - t0, "latency_s": r.end_s - r.start_s,
        "e2e_latency_s": r.end_s - s.arrival_s,
        "ttft_s": ttft, "itl_mean_s": itl, "itl_p50_s": pct(gaps, 50), "itl_p99_s": pct(gaps, 99),
        "tpot_s": tpot, "token_times_s": [t - t0 for t in times] if times else None,
        "queue_s": r.metrics.get("queue_s"), "prefill_s": r.metrics.get("prefill_s"),
        "decode_s": r.metrics.get("decode_s"),
    }


def _total(values: list[float | None]) -> float | None:
    """Sum over GPUs, or None when any GPU's value is missing (no partial totals)."""
    return float(sum(v for v in values if v)) if values and None not in values else None


def energy_columns(w: Window, out_tok: int, n_req: int, intensity: float | None = None,
                   warmup_converged: bool | None = None,
                   m: Measurement | None = None) -> dict[str, Any]:
    """Counter energy inside the boundary, sampled-power energy and their ratio, idle and
    net of idle, CO2 and the intensity's source, the validity checks and their verdict, as
    {column: value} (RunRow.update refuses a name that is no runs column).

    m: the job's measurement settings (default: the window's, else the defaults); intensity:
    a number given by the caller (else looked up from m: llem.measure.carbon)."""
    m = m or w.measurement or Measurement()
    source = "given: measurement.grid_intensity_g_per_kwh" if intensity is not None else None
    if intensity is None:
        intensity, source = grid_intensity(m)
    energy = w.energy_j
    boundary = w.recorded_boundary
    node = boundary == "node" and bool(w.gpu_energy_j)  # a GPU job with the host added
    idle = [v for v in w.idle_power_w.values() if v is not None]
    idle_w = sum(idle) if idle and len(idle) == len(w.idle_power_w) else None
    if node and idle_w is not None:  # the host's idle too, or no net figure
        host_idle = w.idle.host_power_w if w.idle else None
        idle_w = idle_w + host_idle if host_idle is not None else None
    net = energy - idle_w * w.duration_s if energy is not None and idle_w is not None else None
    counter_j = _total(list(w.gpu_energy_j.values()))
    sampled_j = _total(list(w.gpu_sampled_energy_j.values()))
    ratio = safe_div(counter_j, sampled_j)
    host_j = sum(w.cpu.values()) if w.gpu_energy_j and w.cpu and not node else 0.0
    facility = energy * m.pue if node and m.pue is not None and energy is not None else None
    basis = facility if facility is not None else \
        energy + host_j if energy is not None else None
    co2 = basis / J_PER_KWH * intensity if basis is not None and intensity is not None \
        else None
    gpus = len(w.gpu_energy_j)
    coverage = sample_coverage(w.samples, w.duration_s, w.sample_hz, gpus) \
        if w.sample_hz else None
    throttle_s, seen = throttle(w.samples, w.duration_s, m.valid_throttle_reasons)
    checks = Checks(energy=energy is not None, duration_s=w.duration_s,
                    counter_period_s=w.counter_period_s,
                    counter_period_measured=w.counter_period_measured,
                    sample_coverage=coverage, counter_to_sampled=ratio, throttle_s=throttle_s,
                    warmup_converged=warmup_converged)
    valid, reasons = judge(checks, m)
    return {
        "energy_j": energy, "energy_per_token_j": safe_div(energy, out_tok),
        "energy_per_request_j": safe_div(energy, n_req),
        "avg_power_w": safe_div(energy, w.duration_s), "idle_power_w": idle_w,
        "energy_net_j": net, "energy_net_per_token_j": safe_div(net, out_tok),
        "gpu_energy_j": counter_j, "gpu_energy_sampled_j": sampled_j,
        "energy_counter_to_sampled": ratio,
        "gpu_energy_j_per_gpu": [w.gpu_energy_j[u] for u in w.gpu_energy_j],
        "gpu_energy_sampled_j_per_gpu": [w.gpu_sampled_energy_j[u] for u in w.gpu_energy_j],
        "idle_power_w_per_gpu": [w.idle_power_w.get(u) for u in w.gpu_energy_j],
        "cpu_energy_j": w.cpu.get("cpu_energy_j"), "dram_energy_j": w.cpu.get("dram_energy_j"),
        "co2_estimate_g": co2, "grid_intensity_g_per_kwh": intensity,
        "grid_intensity_source": source,
        "boundary": boundary, "energy_facility_j_estimate": facility, "pue": m.pue,
        "cpu_energy_j_estimate": w.cpu_estimate_j, "cpu_estimate_method": w.cpu_estimate_method,
        "energy_unavailable": None if energy is not None else (w.unavailable or
                                                               "energy counter read failed"),
        "energy_valid": valid, "energy_invalid_reasons": reasons if valid is not None else None,
        "energy_counter_period_s": w.counter_period_s,
        "window_counter_periods": checks.counter_periods, "sample_coverage": coverage,
        "throttle_s": throttle_s, "throttle_reasons": seen,
        "power_source": (power_source(w.samples) if gpus else "counter")
        if energy is not None or gpus else None,
        **(w.idle.columns() if w.idle else {}),
    }


def phase_columns(prefill: Window | None, info: dict[str, Any], energy: float | None,
                  repeats: int, out_tok: int, in_tok: int, n_req: int) -> dict[str, Any]:
    """measurement.phases: prefill apart from decode, per pass of the workload (the full
    window and the prefill-only one repeat it a different number of times)."""
    if prefill is None:
        return {}
    p_repeats = int(info.get("prefill_repeats") or 0)
    p_energy = prefill.energy_j
    per_pass = safe_div(p_energy, p_repeats)
    full = safe_div(energy, repeats)
    decode_tok = (out_tok - n_req) / repeats if repeats else 0
    decode = (full - per_pass) / decode_tok if full is not None and per_pass is not None \
        and decode_tok > 0 else None
    return {"prefill_energy_j": per_pass,
            "prefill_energy_per_input_token_j": safe_div(per_pass, in_tok / repeats
                                                         if repeats else None),
            "decode_energy_per_token_j": decode, "prefill_window_s": prefill.duration_s,
            "prefill_repeats": p_repeats}


def ok_result(job: Job, w: Window, served: list[Served], info: dict[str, Any],
              ctx: dict[str, Any], started: float) -> Result:
    t0 = info["t0"]
    reqs = [request_row(job, i, s, t0) for i, s in enumerate(served)]
    records = [s.record for s in served]
    out_tok = sum(r.output_tokens for r in records)
    in_tok = sum(r.input_tokens for r in records)
    streamed = [r for r in reqs if r["token_times_s"]]
    all_gaps = [g for r in records if r.token_times_s
                for g in (b - a for a, b in pairwise(r.token_times_s))]
    flops = info.get("flops_estimate")
    m = job.point.measurement
    run = config_columns(job)
    context_columns(run, ctx)
    run.status, run.started_at, run.finished_at = "ok", started, time.time()
    run.num_requests, run.input_tokens, run.output_tokens = len(records), in_tok, out_tok
    run.duration_s = w.duration_s
    run.tokens_per_s = safe_div(out_tok, w.duration_s)
    run.total_tokens_per_s = safe_div(out_tok + in_tok, w.duration_s)
    run.requests_per_s = safe_div(len(records), w.duration_s)
    run.update(summary([r["latency_s"] for r in reqs], "latency"))
    run.update(summary([r["e2e_latency_s"] for r in reqs], "e2e_latency"))
    run.update(summary([r["ttft_s"] for r in streamed], "ttft"))
    run.update(summary(all_gaps, "itl"))
    run.tpot_mean_s = mean([r["tpot_s"] for r in streamed if r["tpot_s"] is not None])
    run.update(energy_columns(w, out_tok, len(records), None, info.get("warmup_converged"),
                              m))
    run.update(phase_columns(info.get("prefill"), info, run.energy_j, info["repeats"],
                             out_tok, in_tok, len(records)))
    run.repeats, run.warmup_requests = info["repeats"], info["warmup_requests"]
    run.warmup_converged = info.get("warmup_converged")
    run.warmup_shared = info.get("warmup_shared")
    run.warmup_batches_reused = info.get("warmup_batches_reused")
    run.min_window_s = info.get("min_window_s", m.min_window_s)
    run.min_window_reached = info.get("min_window_reached")
    run.arrival_rate_achieved = info.get("arrival_rate_achieved")
    run.flops_estimate = flops
    run.tflops_per_s_estimate = safe_div(flops / 1e12 if flops is not None else None,
                                         w.duration_s)
    samples = [{"schema_version": SCHEMA_VERSION, "campaign": job.campaign, "job_id": job.job_id,
                "cycle": job.cycle, **s} for s in w.samples]
    return Result(run, reqs, samples)


def failed_result(job: Job, exc: BaseException, tb: str, ctx: dict[str, Any],
                  started: float) -> Result:
    """A failure is a result too: one row with status failed and the error."""
    run = config_columns(job)
    context_columns(run, ctx)
    run.status = "failed"
    # a library may echo a credential in its error: masked before it reaches the store
    run.error = redact(f"{type(exc).__name__}: {exc}")[:2000]
    run.traceback = redact(tb[-8000:])
    run.started_at, run.finished_at = started, time.time()
    return Result(run)
