"""One server-mode job: a rate level measured against its group's server.

Order, as the ML.ENERGY benchmark measures a server: an idle baseline with the server up
(its CUDA context and weights loaded), warmup requests that are not measured, then the
level: a ramp the window never sees, and the energy window from the moment the load reached
its target until the last request was sent (loadgen's on_edge calls open and close the
meter in a thread of their own, so the sends are not held up). Tokens and requests are
counted inside that window from their per-chunk times (llem.harness.server.window).

A sweep's middle levels need the synchronous rate and the maximum throughput of the same
server: levels 0 and n + 1 run first in a group (llem.config.grid.sweep_levels) and leave
them on the ServedModel; a middle level that finds none (a shuffled order, a split group)
measures both first, unrecorded, and says so in its row.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from llem.backends import server_of
from llem.config.job import Job, canonical
from llem.config.models import Point, Server
from llem.harness.server.client import GenParams
from llem.harness.server.loadgen import LoadResult, completion_rate, run_load, sweep_rates
from llem.harness.server.metrics import MetricsPoller, window_rows
from llem.harness.server.profiles import (
    Concurrency,
    Constant,
    Gamma,
    Limit,
    Poisson,
    Profile,
    Ramp,
    Synchronous,
    Throughput,
)
from llem.harness.server.served import ServedModel
from llem.harness.server.window import SLO
from llem.measure.meter import EnergyMeter, Idle, Window

ANCHOR_REQUESTS = 16
# requests in flight at a sweep's maximum-throughput level when server.concurrency is unset:
# half the level's requests, at most this (every request at once would leave no window)
THROUGHPUT_CAP = 256  # requests of each unrecorded anchor level a middle sweep level needs


@dataclass
class LevelRun:
    """What one level measured: the load, the energy window and how it was set up."""

    load: LoadResult
    window: Window | None  # None: the load never reached its target (no steady state)
    idle: Idle | None
    slo: SLO
    profile: Profile
    facts: dict[str, Any] = field(default_factory=dict)


def gen_params(p: Point) -> GenParams:
    """The request body's generation settings from the point. output_policy fixed: every
    request decodes exactly max_new_tokens. How a server is asked for that (and for top_k,
    min tokens) is its own: the backend's server module's generation_body, else vLLM's
    OpenAI extensions (ignore_eos, min_tokens, top_k), which trtllm-serve shares."""
    fixed = p.output_policy == "fixed"
    min_tokens = p.max_new_tokens if fixed else (p.min_new_tokens or None)
    body = getattr(server_of(p.backend), "generation_body", None)
    top_p = p.top_p if p.top_p < 1 else None
    seed = p.seed if p.temperature > 0 else None
    if body is not None:
        extra = {**body(min_tokens=min_tokens, ignore_eos=fixed, top_k=p.top_k or None),
                 **p.generate}
        return GenParams(p.max_new_tokens, p.temperature, top_p, seed=seed, extra_body=extra)
    return GenParams(p.max_new_tokens, p.temperature, top_p, top_k=p.top_k or None, seed=seed,
                     ignore_eos=fixed, min_tokens=min_tokens, extra_body=dict(p.generate))


def anchor_key(job: Job) -> str:
    """Levels of one sweep share their anchors: the point without its level."""
    p = job.point
    assert p.server is not None
    server = p.server.model_copy(update={"sweep_level": None})
    return canonical(p.model_copy(update={"server": server}).model_dump(mode="json"))


def profile_of(s: Server, served: ServedModel, job: Job,
               prompts: list[str]) -> tuple[Profile, dict[str, Any]]:
    """The level's load profile; a sweep's middle level from its anchors."""
    if s.profile == "constant":
        return Constant(rate=float(s.rate or 0)), {}
    if s.profile == "poisson":
        return Poisson(rate=float(s.rate or 0), seed=s.seed), {}
    if s.profile == "gamma":
        return Gamma(rate=float(s.rate or 0), burstiness=s.burstiness, seed=s.seed), {}
    if s.profile == "concurrency":
        return Concurrency(n=int(s.concurrency or 1)), {}
    level = s.sweep_level or 0
    if level == 0:
        return Synchronous(), {"sweep_role": "synchronous"}
    if level == s.sweep_levels + 1:  # capped: all at once would leave no window to measure
        cap = s.concurrency or max(1, min(THROUGHPUT_CAP, (s.requests or THROUGHPUT_CAP) // 2))
        return Throughput(max_concurrency=cap), {"sweep_role": "throughput"}
    key = anchor_key(job)
    facts: dict[str, Any] = {"sweep_role": "rate"}
    sync, top = served.anchors.get(key, (None, None))
    if sync is None or top is None:
        sync, top = served.anchors[key] = _anchors(served, job, prompts)
        facts["sweep_anchors_measured_here"] = True
    rates = sweep_rates(sync, top, s.sweep_levels)
    return Poisson(rate=rates[level - 1], seed=s.seed), {**facts, "sweep_sync_rate": sync,
                                                        "sweep_max_rate": top}


def _anchors(served: ServedModel, job: Job, prompts: list[str]) -> tuple[float, float]:
    """The synchronous rate and maximum throughput, measured unrecorded."""
    gen, limit = gen_params(job.point), Limit(requests=ANCHOR_REQUESTS)
    rates = []
    for profile in (Synchronous(), Throughput(max_concurrency=ANCHOR_REQUESTS // 2)):
        load = run_load(served.base_url, served.served_model, prompts, profile, gen,
                        limit=limit, chat=_chat(job), api_key_env=served.api_key_env,
                        saturation=None)
        rates.append(completion_rate(load))
    sync, top = rates
    if sync is None or top is None or not 0 < sync < top:
        raise RuntimeError(f"sweep anchors unusable: synchronous {sync} and maximum {top} "
                           "requests/s (the server answered too few requests)")
    return sync, top


def _chat(job: Job) -> bool:
    return job.point.server is not None and job.point.server.api == "chat"


def measure_level(served: ServedModel, job: Job, prompts: list[str],
                  meter: EnergyMeter) -> LevelRun:
    """Idle baseline, warmup, then the level with its steady-state energy window."""
    p = job.point
    s, m = p.server, p.measurement
    assert s is not None
    served.check()
    idle = meter.idle_baseline(m.idle_baseline_s)
    meter.counter_period_s()  # timed now: in begin() it would delay the window's opening
    gen = gen_params(p)
    if s.warmup_requests:
        run_load(served.base_url, served.served_model, prompts, Concurrency(n=4), gen,
                 limit=Limit(requests=s.warmup_requests), chat=_chat(job),
                 api_key_env=served.api_key_env, saturation=None)
    meter.worked()
    profile, facts = profile_of(s, served, job, prompts)
    edges: dict[str, Window] = {}
    lock = threading.Lock()

    def on_edge(name: str, t: float) -> None:
        with lock:  # the meter opens once and closes once, in this order
            if name == "target_reached" and "open" not in edges:
                meter.begin(m.sample_hz)
                edges["open"] = Window(0.0, {}, {}, {}, {})
            elif name == "last_send" and "open" in edges and "window" not in edges:
                edges["window"] = meter.end()

    poller = MetricsPoller(served.base_url, min(1.0, 1.0 / m.sample_hz), meter.clock).start()
    try:
        load = run_load(served.base_url, served.served_model, prompts, profile, gen,
                        limit=Limit(requests=s.requests, duration_s=s.duration_s),
                        ramp=Ramp(seconds=s.ramp_s), chat=_chat(job),
                        api_key_env=served.api_key_env, on_edge=on_edge)
    finally:
        polls = poller.stop()
        with lock:
            if "open" in edges and "window" not in edges:
                edges["window"] = meter.end()  # the level stopped before its last send
    w = edges.get("window")
    if w is not None and w.started_s is not None:
        w.samples.extend(window_rows(polls, w.started_s, w.started_s + w.duration_s))
    if poller.unavailable and not polls:
        facts["server_metrics_unavailable"] = poller.unavailable
    served.check()  # a server that died mid-level fails the job with the cause
    if s.profile == "sweep" and s.sweep_level in (0, s.sweep_levels + 1):
        key = anchor_key(job)
        sync, top = served.anchors.get(key, (None, None))
        rate = completion_rate(load)
        served.anchors[key] = (rate, top) if s.sweep_level == 0 else (sync, rate)
    return LevelRun(load, w, idle, SLO(s.slo_ttft_s, s.slo_tpot_s), profile, facts)
