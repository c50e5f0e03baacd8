"""The columns of server mode (llem.harness.server): the runs fields of a rate level and
the requests columns of a request sent to a server. Null on offline rows.

Offline columns that mean the same in server mode keep their names and are filled there
too: tokens_per_s, ttft_*, itl_*, e2e_latency_*, energy_j, energy_per_token_j, ... are over
the steady-state window; request_rate is the level's target rate and arrival_rate_achieved
the rate achieved in the window; arrival is the profile.
"""

from __future__ import annotations

from dataclasses import dataclass

from llem.store.column import I32, I64, LF, B, Column, F, S, col
from llem.store.run_fields import RunFields

WINDOW = "the steady-state window (the load reached its target, ramp over, until the last send)"


@dataclass(slots=True, kw_only=True)
class ServerFields(RunFields):
    """Runs columns of server mode (group `server` of docs/schema.md)."""

    mode: str | None = col("server", S, "-", "`offline` (batches handed to the library in "
                           "the worker) or `server` (the backend's own server under load). "
                           "Null on rows written before server mode existed: read as offline.")
    server_profile: str | None = col(
        "server", S, "-", "The level's load profile with its settings, e.g. `poisson rate=4 "
        "seed=0`, `concurrency n=8`, `synchronous n=1`, `throughput`.")
    burstiness: float | None = col(
        "server", F, "-", "Gamma profile's shape k (inter-arrival gaps ~ Gamma(k, 1/(k·rate))): "
        "1 is Poisson, under 1 burstier. Null for other profiles.")
    server_concurrency: int | None = col(
        "server", I32, "requests", "Closed-loop requests in flight (profile concurrency), or a "
        "throughput level's cap.")
    sweep_level: int | None = col(
        "server", I32, "-", "A sweep's level: 0 the synchronous rate, sweep_levels + 1 the "
        "maximum throughput, between them Poisson rates spread evenly over that range.")
    sweep_role: str | None = col("server", S, "-", "`synchronous`, `throughput` or `rate`.")
    sweep_sync_rate: float | None = col(
        "server", F, "requests/s", "The synchronous rate a sweep's rate level was spread from.")
    sweep_max_rate: float | None = col(
        "server", F, "requests/s", "The maximum throughput a sweep's rate level was spread "
        "from.")
    sweep_anchors_measured_here: bool | None = col(
        "server", B, "-", "True when this level had to measure the sweep's two anchor rates "
        "itself (unrecorded), because its worker had not run levels 0 and n + 1.")
    steady_state_s: float | None = col(
        "server", F, "s", f"Length of {WINDOW}. The energy window is the same span.")
    window_start_s: float | None = col(
        "server", F, "s", "Window start, seconds after the level's first scheduled request.")
    window_end_s: float | None = col("server", F, "s", "Window end, on the same clock.")
    window_rule: str | None = col(
        "server", S, "-", "The rule that chose the window and counted what is in it, as text.")
    window_unavailable: str | None = col(
        "server", S, "-", "Why there is no window (the load never reached its target).")
    requests_in_window: int | None = col(
        "server", I64, "requests", "Requests sent inside the window (latency, SLO and goodput "
        "figures are over them).")
    failed_requests_in_window: int | None = col(
        "server", I64, "requests", "Of them, the ones that failed (HTTP error, cut stream).")
    output_tokens_in_window: float | None = col(
        "server", F, "tokens", "Output tokens whose chunk arrived inside the window (a "
        "request's usage count spread evenly over its content chunks). Null when the server "
        "reported no usage.")
    input_tokens_in_window: int | None = col(
        "server", I64, "tokens", "Prompt tokens (usage) of the successful requests of the "
        "window.")
    tokens_unavailable: str | None = col(
        "server", S, "-", "Why token counts are null (the server sent no usage).")
    requests_total: int | None = col(
        "server", I64, "requests", "Every request of the level: ramp, window and drain.")
    ramp_requests: int | None = col(
        "server", I64, "requests", "Requests sent during the ramp (never measured).")
    max_in_flight: int | None = col(
        "server", I64, "requests", "Most requests in flight at one check of the load loop.")
    stop_reason: str | None = col(
        "server", S, "-", "Why the level stopped sending: `requests`, `duration` or "
        "`saturated`.")
    saturated: bool | None = col(
        "server", B, "-", "True when the level was stopped early as over-saturated (achieved "
        "send rate well under the target, or requests in flight growing without end): not a "
        "normal point.")
    saturation_reason: str | None = col("server", S, "-", "What the over-saturation stop saw.")
    slo_ttft_s: float | None = col(
        "server", F, "s", "The TTFT limit a request had to meet (`server.slo_ttft_s`).")
    slo_tpot_s: float | None = col(
        "server", F, "s", "The TPOT limit a request had to meet (`server.slo_tpot_s`).")
    slo_attainment: float | None = col(
        "server", F, "-", "Share of the window's requests that succeeded within the SLOs. Null "
        "when some request's TPOT is unknown (no usage).")
    goodput_requests_per_s: float | None = col(
        "server", F, "requests/s", "Requests of the window meeting the SLOs per second of the "
        "window.")
    energy_per_good_request_j: float | None = col(
        "server", F, "J/request", "`energy_j` / requests meeting the SLOs in the window.")
    tpot_p50_s: float | None = col("server", F, "s", "Median TPOT of the window's requests.")
    tpot_p90_s: float | None = col("server", F, "s", "90th percentile TPOT.")
    tpot_p99_s: float | None = col("server", F, "s", "99th percentile TPOT.")
    wait_p50_s: float | None = col(
        "server", F, "s", "Median of sent - scheduled: how late the client sent (closed-loop: "
        "time waiting for a free slot).")
    wait_p90_s: float | None = col("server", F, "s", "90th percentile of the same.")
    wait_p99_s: float | None = col("server", F, "s", "99th percentile of the same.")
    server_url: str | None = col("server", S, "-", "The server's base URL.")
    server_log: str | None = col(
        "server", S, "-", "The server's log file (stdout and stderr), beside the store for a "
        "local store. Null for an endpoint llem did not start.")
    server_start_s: float | None = col(
        "server", F, "s", "From the start of the server's process to its being ready, once "
        "per load group.")
    server_ready_s: float | None = col(
        "server", F, "s", "From spawn until `/v1/models` answered (the launcher's clock).")
    previous_server_stop_s: float | None = col(
        "server", F, "s", "How long the previous group's server on this worker took to stop "
        "(its whole process tree).")
    previous_server_gpu_memory_released: bool | None = col(
        "server", B, "-", "Whether the job's GPUs were back near their memory before that "
        "server started. Null when it could not be checked.")
    server_metrics_unavailable: str | None = col(
        "server", S, "-", "Why the server's /metrics gave no sample (no such endpoint, none of "
        "the metrics llem reads): the timeline then has power alone.")
    previous_server_gpu_check: str | None = col(
        "server", S, "-", "How that check went, or why it could not be made (no NVML).")


# requests columns of server mode (appended to llem.store.columns.REQUESTS)
SERVER_REQUESTS = (
    Column("itl_s", LF, "s", "Server mode: every inter-token latency of the request, the gaps "
           "between its content chunks (a chunk may carry several tokens)."),
    Column("slo_met", B, "-", "Server mode: the request succeeded within `slo_ttft_s` and "
           "`slo_tpot_s` of its run. Null when its TPOT is unknown (no usage)."),
    Column("energy_attributed_j", F, "J", "Server mode, attributed (not measured per "
           "request): the window's energy times this request's share of the window's output "
           "tokens; the shares sum to the window's energy."),
    Column("energy_whole_request_j", F, "J", "Server mode, attributed: the window's energy per "
           "output token times the request's whole output (the ML.ENERGY benchmark's rule)."),
    Column("output_tokens_in_window", F, "tokens", "Server mode: its output tokens whose chunk "
           "arrived inside the window."),
    Column("in_ramp", B, "-", "Server mode: sent during the ramp (never measured)."),
    Column("in_window", B, "-", "Server mode: sent inside the steady-state window."),
    Column("ok", B, "-", "Server mode: the request succeeded (a full stream)."),
    Column("status", I32, "-", "Server mode: HTTP status; null when no response came."),
    Column("error", S, "-", "Server mode: why the request failed, truncated."),
    Column("chunks", I32, "chunks", "Server mode: content chunks received."),
    Column("finish_reason", S, "-", "Server mode: the server's finish_reason (`length`, "
           "`stop`)."),
    Column("usage_reported", B, "-", "Server mode: the server sent usage token counts "
           "(otherwise token counts are null, never counted from chunks)."),
)

# samples columns of server mode (appended to llem.store.columns.SAMPLES): one row per poll
# of the server's Prometheus /metrics during the window (gpu_uuid null on those rows)
SERVER_SAMPLES = (
    Column("server_requests_running", F, "requests", "Server mode: requests the server was "
           "running (vLLM `vllm:num_requests_running`), from its /metrics."),
    Column("server_requests_waiting", F, "requests", "Server mode: requests queued in the "
           "server (vLLM `vllm:num_requests_waiting`)."),
    Column("server_kv_cache_usage_pct", F, "%", "Server mode: KV-cache use (vLLM "
           "`vllm:kv_cache_usage_perc` x 100)."),
)
