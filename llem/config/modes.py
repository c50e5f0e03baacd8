"""What a point's mode leaves unused, in one place.

Server mode (llem.harness.server) sends server:'s load to the backend's own server: the
server batches the requests it gets, llem's client always streams, and the level's window,
warmup and arrivals are server:'s. The offline settings below mean nothing to such a point.
A server point resets them to their defaults (llem.config.models.Point), so that a grid with
both modes runs each server configuration once instead of once per offline value, each row
labelled with a setting it never had; a value of them that reaches server points only is
refused, saying where server mode takes it from (llem.config.checks.check_mode_values).
Offline points likewise drop server: (server mode's load), a greedy point (temperature 0) its
sampling settings (GREEDY_UNUSED), and a server: field its profile does not use is reset the
same way (PROFILE_USES: a rate on a closed-loop level was stored as
its request_rate). level_problem and level_time_problem: a level that could not be
measured (no window) or that measurement.job_timeout_s would stop every time.
"""

from __future__ import annotations

from typing import Any

from llem.backends import REGISTRY

# path -> where server mode takes it from (the hint of the refusal)
UNUSED_IN_SERVER = {
    "batch_size": "the server batches the requests it gets: set its own limit "
                  "(vllm: {max_num_seqs: 64}) or server: {profile: concurrency, concurrency: N}",
    "streaming": "server mode always streams (TTFT and ITL are on every server row; its "
                 "rows say streaming true)",
    "measurement.request_rate": "write server: {rate: ...}",
    "measurement.arrival": "write server: {profile: poisson} (or constant, gamma, concurrency, "
                           "sweep)",
    "measurement.arrival_seed": "write server: {seed: ...}",
    "measurement.max_concurrency": "write server: {profile: concurrency, concurrency: N}",
    "measurement.warmup_requests": "write server: {warmup_requests: N}",
    "measurement.warmup_cv": "server mode warms up with server: {warmup_requests: N}",
    "measurement.warmup_window": "server mode warms up with server: {warmup_requests: N}",
    "measurement.min_window_s": "a level's window is server: {duration_s: ...} (or requests)",
    "measurement.max_repeats": "a level's window is server: {duration_s: ...} (or requests)",
}


def default_of(path: str, point: Any) -> Any:
    """The default of one of UNUSED_IN_SERVER's paths; point: the Point class."""
    head, _, field = path.partition(".")
    model = point.model_fields["measurement"].annotation if field else point
    return model.model_fields[field or head].default


def server_resets(point: Any) -> dict[str, Any]:
    """The fields a server point takes instead of its offline settings (attribute -> value),
    only those off their default (as profile_resets): batch_size and streaming at their
    defaults, measurement with its offline fields reset. Nothing to reset, nothing copied:
    every job's point passes here."""
    cls = type(point)
    out = {p: default_of(p, cls) for p in UNUSED_IN_SERVER
           if "." not in p and getattr(point, p) != default_of(p, cls)}
    measurement = {p.split(".", 1)[1]: default_of(p, cls) for p in UNUSED_IN_SERVER
                   if "." in p and getattr(point.measurement, p.split(".", 1)[1]) !=
                   default_of(p, cls)}
    if measurement:
        out["measurement"] = point.measurement.model_copy(update=measurement)
    return out


# sampling settings greedy decoding (temperature 0: every backend takes the likeliest token)
# leaves unused -> what makes them apply (the hint of the refusal)
GREEDY_UNUSED = {"top_p": "set temperature > 0 (or a sampling preset: standard, creative, "
                          "factual) for them to apply",
                 "top_k": "set temperature > 0 (or a sampling preset) for it to apply",
                 "seed": "the sampling seed draws nothing at temperature 0: set temperature "
                         "> 0, or leave seed out"}


def greedy_resets(point: Any) -> dict[str, Any]:
    """A greedy point's sampling settings at their defaults (only those off them), so that
    `temperature: [0, 0.8]` beside `top_p: [0.9, 1.0]` measures greedy decoding once, not
    twice under two top_p labels it never used (llem.config.greedy_check refuses a value
    that reaches greedy points only)."""
    if point.temperature != 0:
        return {}
    fields = type(point).model_fields
    return {f: fields[f].default for f in GREEDY_UNUSED if getattr(point, f) != fields[f].default}


def point_resets(point: Any) -> dict[str, Any]:
    """Every field a point leaves unused, at its default: server: on an offline point, the
    offline settings on a server point, the sampling settings of a greedy one."""
    out = {"server": None} if point.mode == "offline" else server_resets(point)
    if point.mode == "offline" and (arrivals := arrival_resets(point.measurement)):
        out["measurement"] = point.measurement.model_copy(update=arrivals)
    return {**out, **greedy_resets(point)}


def arrival_resets(m: Any) -> dict[str, Any]:
    """The arrival settings an offline point's measurement draws nothing with, at their
    defaults: arrival and arrival_seed without a request_rate (all queued at once), the
    seed beside constant gaps. `arrival: [poisson, constant]` beside `request_rate: [null,
    2]` measures the queued-at-once job once, not twice (llem.config.arrival_check refuses
    a value no point uses)."""
    fields = type(m).model_fields
    unused = ("arrival", "arrival_seed") if m.request_rate is None else \
        ("arrival_seed",) if m.arrival == "constant" else ()
    return {f: fields[f].default for f in unused if getattr(m, f) != fields[f].default}


# server: fields -> the profiles that use them (llem.harness.server.level.profile_of)
PROFILE_USES = {"rate": ("constant", "poisson", "gamma"), "burstiness": ("gamma",),
                "seed": ("poisson", "gamma", "sweep"), "concurrency": ("concurrency", "sweep"),
                "sweep_levels": ("sweep",)}


def profile_resets(server: Any) -> dict[str, Any]:
    """The server: fields server's profile does not use and that are off their default, at
    their default (attribute -> value)."""
    fields = type(server).model_fields
    return {f: fields[f].default for f, uses in PROFILE_USES.items()
            if server.profile not in uses and getattr(server, f) != fields[f].default}


OPEN_LOOP = ("constant", "poisson", "gamma")


def level_problem(server: Any) -> str | None:
    """Why a server: section's level could not be measured, else None. Its window runs from
    the send with which the load reached its target (closed loop: n requests in flight) to
    the last send (llem.harness.server.window), so it needs two sends past that point; a
    level without one was an ok row with no figure in it."""
    s = server
    if s.profile in OPEN_LOOP and s.rate is None:
        return f"profile {s.profile} needs a rate (requests/s)"
    if s.profile == "concurrency" and s.concurrency is None:
        return "profile concurrency needs concurrency (requests in flight)"
    if s.requests is None and s.duration_s is None:
        return "set requests (per level) or duration_s"
    if s.requests == 1:
        return ("requests: 1 leaves a level no window (it runs from the first measured send "
                "to the last): give 2 or more")
    n = s.concurrency if s.profile in ("concurrency", "sweep") else None
    if n is not None and s.requests is not None and s.requests <= n:
        return (f"requests ({s.requests}) must be more than concurrency ({n}): the level "
                f"reaches {n} in flight with its {n}th send and its window ends at its last")
    sends = s.rate * s.duration_s if s.profile in OPEN_LOOP and s.duration_s else 2
    if sends < 2:
        return (f"rate {s.rate:g} for duration_s {s.duration_s:g} sends about {sends:.2g} "
                f"request{'s' * (sends != 1)} a level, and its window needs 2: raise "
                "duration_s or rate")
    return None


def level_time_problem(point: Any) -> str | None:
    """A server level whose expected length (ramp_s, then duration_s or requests / rate) is
    past measurement.job_timeout_s: the driver would stop it there, every time."""
    s, limit = point.server, point.measurement.job_timeout_s
    if s is None or point.mode != "server":
        return None
    spans = [(s.duration_s, f"duration_s {s.duration_s:g}")] if s.duration_s else []
    if s.profile in OPEN_LOOP and s.requests is not None and s.rate:
        spans.append((s.requests / s.rate, f"requests {s.requests} at rate {s.rate:g}"))
    if not spans:
        return None
    span, what = min(spans)
    if span + s.ramp_s <= limit:
        return None
    ramp = f" after ramp_s {s.ramp_s:g}" if s.ramp_s else ""
    return (f"a level takes about {span + s.ramp_s:g} s ({what}{ramp}), more than "
            f"measurement.job_timeout_s ({limit:g} s), which would stop it every time: raise "
            "job_timeout_s, or shorten the level")


# the request body fields llem's load client writes itself (llem.harness.server.client:
# Client.payload, GenParams.body), each -> where its value comes from: a generate.<key> of a
# server point would overwrite it, the row labelled with what was not sent (-> why, how)
SERVER_BODY = {
    "model": "the model is the models: entry", "prompt": "prompts come from the dataset",
    "messages": "prompts come from the dataset", "stream": "every request streams",
    "stream_options": "usage is always asked for", "max_tokens": "set max_new_tokens",
    "max_completion_tokens": "set max_new_tokens", "min_tokens": "set min_new_tokens",
    "ignore_eos": "set output_policy", "temperature": "set temperature", "top_p": "set top_p",
    "top_k": "set top_k", "seed": "set seed",
    "n": "one completion per request (its chunks and usage are the request's)",
    "best_of": "one completion per request (its chunks and usage are the request's)",
    "echo": "an echoed prompt would be counted as output",
}


def served_name(backend: str) -> bool:
    """Does the backend send its model's name to a server that already runs (endpoint: no
    library loads it, BackendInfo.package None)? Its model is that server's name for it
    (`vllm serve /data/llama` serves "/data/llama")."""
    info = REGISTRY.get(backend)
    return info is not None and info.needs_model and info.package is None
