"""The steady-state window of a load level and its per-request and per-job figures.

Pure functions of a LoadResult and the window's energy: they are tested on hand-made replies.

The window opens when the load reached its target (LoadResult.target_reached_s: the ramp is
over, closed-loop n requests are in flight) and closes at the last send (last_send_s): the
ramp's fill-up and the drain's tail, where the server is not under the load being measured,
stay out, as in the ML.ENERGY benchmark's steady-state window. Energy is measured over the
same window by the caller. Edges are half-open, [start, end).

- Requests of the window: those sent inside it (not in the ramp). Their count over the
  window's length is the achieved request rate; latency percentiles and SLO figures are
  over them. A request sent inside may finish after it: its latency still counts.
- Tokens of the window: output tokens whose chunk arrived inside it, from every reply (a
  ramp request still decoding in the window counts: the window's energy went into it). A
  chunk may carry several tokens, and usage gives only a request's total, so a request's
  usage count is spread evenly over its content chunks: a request with T output tokens in
  C chunks, c of them inside, adds T*c/C. A reply without usage (a server that sends none)
  has no known count: then the window's token totals are None, never a partial sum, with
  the reason; a reply that failed mid-stream without usage is left out of them and counted.
- Energy attributed to a request (energy_attributed_j): the window's energy split by each
  reply's share of the window's output tokens; the shares sum to the window's energy.
  energy_whole_request_j is the ML.ENERGY benchmark's per-generation rule instead: the
  window's energy per output token times the request's whole output.
- SLOs (ttft_s, tpot_s, either optional): a request meets them when it succeeded and its
  TTFT and TPOT are within them; TPOT is (end - first token) / (output tokens - 1) and a
  one-token reply passes the TPOT SLO. Without usage TPOT is unknown: slo_met is None, and
  the job's attainment and goodput are None. A failed request does not meet them.
  slo_attainment = met / requests of the window; goodput = met / window seconds.
- A window that held no request sent and no chunk received (a level shorter than the
  meter's opening) measured nothing: its figures are None with the reason, never 0 tok/s
  or 0 requests/s, whether the server sends usage or not.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from llem.harness.server.client import Reply
from llem.harness.server.loadgen import LoadResult
from llem.measure.stats import safe_div, summary

RULE = ("window: target reached (ramp over) to last send, [start, end); requests sent in it; "
        "output tokens by chunk time, usage split evenly over chunks; energy split by "
        "in-window output-token share")

EMPTY = ("the steady-state window ({ms:.0f} ms) held no request and no output token: the level "
         "ended before the energy window could measure it; raise server.requests or set "
         "server.duration_s")


@dataclass(frozen=True)
class SLO:
    """Service-level objectives per request; None: not judged."""

    ttft_s: float | None = None
    tpot_s: float | None = None


def steady_window(load: LoadResult) -> tuple[float, float] | None:
    """(start_s, end_s) on the perf_counter clock, or None when the level has no window."""
    a, b = load.target_reached_s, load.last_send_s
    return (a, b) if a is not None and b is not None and b > a else None


def tokens_inside(r: Reply, start_s: float, end_s: float) -> float | None:
    """Output tokens of r whose chunk arrived in [start_s, end_s): usage spread over chunks."""
    times = r.chunk_times_s
    if not times:
        return 0.0
    if r.output_tokens is None:
        return None
    return r.output_tokens * chunks_inside(r, start_s, end_s) / len(times)


def chunks_inside(r: Reply, start_s: float, end_s: float) -> int:
    """Content chunks of r that arrived in [start_s, end_s) (known without usage too)."""
    return bisect_left(r.chunk_times_s, end_s) - bisect_left(r.chunk_times_s, start_s)


def in_window(r: Reply, start_s: float, end_s: float) -> bool:
    return not r.in_ramp and r.sent_s is not None and start_s <= r.sent_s < end_s


def tpot(r: Reply) -> float | None:
    if r.first_token_s is None or r.end_s is None or not r.output_tokens or \
            r.output_tokens < 2:
        return None
    return (r.end_s - r.first_token_s) / (r.output_tokens - 1)


def slo_met(r: Reply, slo: SLO) -> bool | None:
    """Whether r met the SLOs; None when its TPOT is needed and unknown (no usage)."""
    if not r.ok or r.first_token_s is None or r.sent_s is None:
        return False
    if slo.ttft_s is not None and r.first_token_s - r.sent_s > slo.ttft_s:
        return False
    if slo.tpot_s is None:
        return True
    if r.output_tokens is None:
        return None
    t = tpot(r)
    return t is None or t <= slo.tpot_s


def _window_tokens(load: LoadResult, w: tuple[float, float]) -> tuple[
        list[float | None], float | None, str | None]:
    """Per reply in-window output tokens, their total (None if unknown) and why unknown."""
    per = [tokens_inside(r, *w) for r in load.replies]
    missing = [r.index for r, t in zip(load.replies, per) if t is None and r.ok]
    if missing:
        return per, None, (f"{len(missing)} successful replies in the window carry no usage "
                           f"(the server sent no token counts), e.g. request {missing[0]}")
    return per, float(sum(t for t in per if t is not None)), None


def request_figures(load: LoadResult, energy_j: float | None = None, slo: SLO = SLO(),
                    window: tuple[float, float] | None = None) -> list[dict[str, Any]]:
    """One row per reply (ramp included). Times are seconds relative to load.started_s:
    scheduled_s, sent_s, first_token_s, end_s, chunk_times_s; durations: wait_s (sent -
    scheduled), ttft_s, itl_s (gaps between content chunks), tpot_s, e2e_s (sent to last
    chunk; successful replies only); counts: input_tokens, output_tokens (usage), chunks,
    output_tokens_in_window; flags: in_ramp, in_window, ok, usage_reported, slo_met;
    energy_attributed_j, energy_whole_request_j (module docstring); status, error."""
    w = window or steady_window(load)
    per, total, _ = _window_tokens(load, w) if w else ([None] * len(load.replies), None, None)
    per_token = safe_div(energy_j, total)
    t0 = load.started_s

    def rel(t: float | None) -> float | None:
        return None if t is None else t - t0

    rows = []
    for r, inside in zip(load.replies, per):
        times = r.chunk_times_s
        sent = r.sent_s
        rows.append({
            "request_index": r.index, "in_ramp": r.in_ramp,
            "in_window": bool(w and in_window(r, *w)), "ok": r.ok, "status": r.status,
            "error": r.error, "scheduled_s": r.scheduled_s - t0, "sent_s": rel(sent),
            "first_token_s": rel(r.first_token_s), "end_s": rel(r.end_s),
            "wait_s": None if sent is None else sent - r.scheduled_s,
            "ttft_s": None if sent is None or r.first_token_s is None else
            r.first_token_s - sent,
            "itl_s": [b - a for a, b in pairwise(times)], "tpot_s": tpot(r),
            "e2e_s": r.end_s - sent if r.ok and sent is not None and r.end_s is not None
            else None,
            "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
            "usage_reported": r.usage_reported, "chunks": len(times),
            "finish_reason": r.finish_reason, "chunk_times_s": [t - t0 for t in times],
            "output_tokens_in_window": inside,
            "slo_met": slo_met(r, slo),
            "energy_attributed_j": None if per_token is None or inside is None else
            per_token * inside,
            "energy_whole_request_j": None if per_token is None or r.output_tokens is None
            else per_token * r.output_tokens,
        })
    return rows


def job_figures(load: LoadResult, energy_j: float | None = None, slo: SLO = SLO(),
                window: tuple[float, float] | None = None) -> dict[str, Any]:
    """The level's figures over its steady-state window (energy_j: the window's energy, as
    measured by the caller over the same window). Keys: window_start_s, window_end_s
    (relative to load.started_s), steady_state_s, window_rule, window_unavailable;
    requests_in_window, ok/failed_requests_in_window, achieved_requests_per_s,
    target_rate_per_s, output_tokens_in_window, output_tokens_per_s, input_tokens_in_window,
    tokens_unavailable; slo_ttft_s, slo_tpot_s, slo_attainment, goodput_requests_per_s;
    ttft/itl/tpot/e2e/wait _mean/_p50/_p90/_p99_s; energy_window_j,
    energy_per_output_token_j, energy_per_request_j; profile, stop_reason, saturated,
    saturation_reason, max_in_flight, requests_total, ramp_requests."""
    w = window or steady_window(load)
    base: dict[str, Any] = {
        "profile": load.profile, "window_rule": RULE, "stop_reason": load.stop_reason,
        "saturated": load.saturated, "saturation_reason": load.saturation_reason,
        "max_in_flight": load.max_in_flight, "requests_total": len(load.replies),
        "ramp_requests": sum(r.in_ramp for r in load.replies),
        "target_rate_per_s": load.target_rate_per_s, "slo_ttft_s": slo.ttft_s,
        "slo_tpot_s": slo.tpot_s, "energy_window_j": energy_j,
    }
    if w is None:
        return {**base, "window_unavailable": "no steady-state window: the load never "
                "reached its target, or no request was sent after it did",
                **_latency([]), "steady_state_s": None}
    start, end = w
    span = end - start
    reqs = [r for r in load.replies if in_window(r, start, end)]
    if not reqs and not any(chunks_inside(r, start, end) for r in load.replies):
        # it measured nothing (with usage or without): no figure of 0 tok/s from it
        return {**base, "window_unavailable": EMPTY.format(ms=span * 1000),
                "window_start_s": start - load.started_s, "window_end_s": end - load.started_s,
                **_latency([]), "steady_state_s": span, "requests_in_window": 0}
    ok = [r for r in reqs if r.ok]
    _, out_tok, why = _window_tokens(load, w)
    met = [slo_met(r, slo) for r in reqs]
    n_met = None if None in met else sum(1 for m in met if m)
    in_tok = [r.input_tokens for r in ok]
    return {
        **base, "window_unavailable": None,
        "window_start_s": start - load.started_s, "window_end_s": end - load.started_s,
        "steady_state_s": span, "requests_in_window": len(reqs),
        "ok_requests_in_window": len(ok), "failed_requests_in_window": len(reqs) - len(ok),
        "achieved_requests_per_s": len(reqs) / span,
        "output_tokens_in_window": out_tok, "output_tokens_per_s": safe_div(out_tok, span),
        "input_tokens_in_window": None if None in in_tok else sum(t for t in in_tok if t),
        "tokens_unavailable": why,
        "slo_attainment": safe_div(n_met, len(reqs)) if n_met is not None else None,
        "goodput_requests_per_s": safe_div(n_met, span) if n_met is not None else None,
        "slo_unknown_requests": sum(1 for m in met if m is None),
        **_latency(ok),
        "energy_per_output_token_j": safe_div(energy_j, out_tok),
        "energy_per_request_j": safe_div(energy_j, len(reqs)),
    }


def _latency(ok: list[Reply]) -> dict[str, float | None]:
    ttft = [r.first_token_s - r.sent_s for r in ok
            if r.first_token_s is not None and r.sent_s is not None]
    itl = [b - a for r in ok for a, b in pairwise(r.chunk_times_s)]
    e2e = [r.end_s - r.sent_s for r in ok if r.end_s is not None and r.sent_s is not None]
    tp = [t for r in ok if (t := tpot(r)) is not None]
    wait = [r.sent_s - r.scheduled_s for r in ok if r.sent_s is not None]
    return {**summary(ttft, "ttft"), **summary(itl, "itl"), **summary(tp, "tpot"),
            **summary(e2e, "e2e"), **summary(wait, "wait")}
