"""A server-mode job's Result: its runs row, one requests row per request, the timeline.

The runs row carries the offline columns that still mean the same (throughput, latency
percentiles, energy over the window) plus the server's: the load profile, the achieved
rate, goodput and SLO attainment, the steady-state window and what it held, saturation,
and the server's own facts (URL, log, start time). Energy per token is over the window's
output tokens (tokens whose chunk arrived inside it), never over the ramp or the drain.
"""

from __future__ import annotations

import time
from typing import Any

from llem.config.job import Job
from llem.harness.result import config_columns, context_columns, energy_columns
from llem.harness.server.level import LevelRun
from llem.harness.server.profiles import describe
from llem.harness.server.window import job_figures, request_figures
from llem.measure.stats import mean, pct, safe_div
from llem.store.run_row import Result
from llem.store.schema import SCHEMA_VERSION

# job_figures keys stored under their own name (the rest are renamed below or not stored)
SAME = ("goodput_requests_per_s", "slo_attainment", "steady_state_s", "window_start_s",
        "window_end_s", "requests_in_window", "output_tokens_in_window",
        "input_tokens_in_window", "saturated", "saturation_reason", "stop_reason",
        "window_rule", "window_unavailable", "slo_ttft_s", "slo_tpot_s", "max_in_flight",
        "ramp_requests", "failed_requests_in_window", "tokens_unavailable")
LATENCY = ("ttft", "itl", "tpot", "e2e", "wait")


def level_result(job: Job, level: LevelRun, ctx: dict[str, Any], started: float) -> Result:
    """The job's rows from its level's load, energy window and the worker's facts."""
    w, load, s = level.window, level.load, job.point.server
    assert s is not None
    energy = w.energy_j if w is not None else None
    span = (w.started_s, w.started_s + w.duration_s) if w is not None and \
        w.started_s is not None else None
    figs = job_figures(load, energy, level.slo, window=span)
    reqs = request_figures(load, energy, level.slo, window=span)
    inside = [q for q in reqs if q["in_window"]]
    if inside and not any(q["ok"] for q in inside):  # nothing measured: a failed job
        first = next(q["error"] for q in inside if q["error"])
        raise RuntimeError(f"every request of the window failed ({len(inside)}), e.g.: "
                           f"{first}")
    sent = [q for q in reqs if q["error"] or q["ok"]]
    if sent and not any(q["ok"] for q in sent):  # failed so fast that no window held one:
        first = next(q["error"] for q in sent if q["error"])  # it was an ok row of 0 tok/s
        raise RuntimeError(f"every request of the level failed ({len(sent)}), e.g.: {first}")
    run = config_columns(job)
    context_columns(run, ctx)
    out_tok = figs.get("output_tokens_in_window")
    n_req = figs.get("requests_in_window") or 0
    run.status, run.started_at, run.finished_at = "ok", started, time.time()
    run.update({k: figs.get(k) for k in SAME})
    run.update({
        "server_profile": describe(level.profile),
        "request_rate": getattr(level.profile, "rate", None),  # a sweep level's own rate
        "arrival_rate_achieved": figs.get("achieved_requests_per_s"),
        "num_requests": n_req, "output_tokens": None if out_tok is None else round(out_tok),
        "input_tokens": figs.get("input_tokens_in_window"),
        "duration_s": w.duration_s if w is not None else None,
        "tokens_per_s": figs.get("output_tokens_per_s"),
        "requests_per_s": figs.get("achieved_requests_per_s"),
        "tpot_mean_s": figs.get("tpot_mean_s"),
        **{f"{m}_{q}_s": figs.get(f"{m}_{q}_s") for m in ("ttft", "itl")
           for q in ("mean", "p50", "p90", "p99")},
        **{f"e2e_latency_{q}_s": figs.get(f"e2e_{q}_s") for q in ("mean", "p50", "p90", "p99")},
        **{f"latency_{q}_s": figs.get(f"e2e_{q}_s") for q in ("mean", "p50", "p90", "p99")},
        **{f"{m}_{q}_s": figs.get(f"{m}_{q}_s") for m in ("tpot", "wait")
           for q in ("p50", "p90", "p99")},
        "requests_total": len(load.replies),
        "warmup_requests": s.warmup_requests,
        **level.facts,
    })
    good = None if run.goodput_requests_per_s is None or run.steady_state_s is None else \
        run.goodput_requests_per_s * run.steady_state_s
    if w is not None:
        run.update(energy_columns(w, out_tok or 0, n_req, job.point.measurement
                                  .grid_intensity_g_per_kwh))
        if out_tok is None:  # no usage from the server: no per-token energy, say why
            run.energy_per_token_j = None
        failed = figs.get("failed_requests_in_window") or 0
        if failed and run.energy_valid is not None:  # their work is in the window's energy,
            run.energy_valid = False                 # their tokens in none of its counts
            run.energy_invalid_reasons = [*(run.energy_invalid_reasons or []), (
                f"failed_requests: {failed} of the window's {n_req} requests failed (their "
                "energy is in the window, their output in no token count)")]
        run.energy_per_good_request_j = safe_div(energy, good)
    else:
        run.energy_unavailable = figs.get("window_unavailable")
    rows = [_request_row(job, r) for r in reqs]
    samples = [{"schema_version": SCHEMA_VERSION, "campaign": job.campaign,
                "job_id": job.job_id, "cycle": job.cycle, **x}
               for x in (w.samples if w is not None else [])]
    return Result(run, rows, samples)


def _request_row(job: Job, r: dict[str, Any]) -> dict[str, Any]:
    """A server request as a requests row (offline columns where they mean the same)."""
    itl = r["itl_s"]
    sent, sched = r["sent_s"], r["scheduled_s"]
    return {
        "schema_version": SCHEMA_VERSION, "campaign": job.campaign, "job_id": job.job_id,
        "cycle": job.cycle, "request_index": r["request_index"], "repeat": 0,
        "batch_index": None, "input_tokens": r["input_tokens"],
        "output_tokens": r["output_tokens"], "arrival_s": sched, "wait_s": r["wait_s"],
        "start_s": sent, "end_s": r["end_s"], "latency_s": r["e2e_s"],
        "e2e_latency_s": None if r["end_s"] is None or not r["ok"] else r["end_s"] - sched,
        "ttft_s": r["ttft_s"], "itl_mean_s": mean(itl), "itl_p50_s": pct(itl, 50),
        "itl_p99_s": pct(itl, 99), "tpot_s": r["tpot_s"],
        "token_times_s": r["chunk_times_s"] or None, "itl_s": itl,
        "slo_met": r["slo_met"], "energy_attributed_j": r["energy_attributed_j"],
        "energy_whole_request_j": r["energy_whole_request_j"], "in_ramp": r["in_ramp"],
        "in_window": r["in_window"], "ok": r["ok"], "status": r["status"],
        "error": r["error"], "chunks": r["chunks"], "finish_reason": r["finish_reason"],
        "usage_reported": r["usage_reported"],
        "output_tokens_in_window": r["output_tokens_in_window"],
    }
