"""The store's tables: their fixed Arrow schemas, the file names llem writes, and the
schema version every row carries. Fixed schemas keep all-null columns typed."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 1

TABLES = ("runs", "requests", "samples", "sessions")
MAGIC = b"PAR1"  # a Parquet file's first and last four bytes
# <table>/campaign=<name>/<job_id>-c<cycle>.parquet, job_id being a hex digest (llem.config.grid);
# sessions/campaign=<name>/<UTC time>-<hex>.parquet, one per driver session;
# <table>/campaign=<name>/compact-<UTC time>-<hex>.parquet, written by `llem compact`
_CAMPAIGN = r"campaign=[A-Za-z0-9][A-Za-z0-9_.-]*/"
DATA_PATH = re.compile(rf"(?:(?:runs|requests|samples)/{_CAMPAIGN}[0-9a-f]{{8,64}}-c[0-9]+|"
                       rf"sessions/{_CAMPAIGN}[0-9]{{8}}T[0-9]{{6}}-[0-9a-f]{{8}}|"
                       rf"(?:runs|requests|samples|sessions)/{_CAMPAIGN}"
                       r"compact-[0-9]{8}T[0-9]{6}-[0-9a-f]{8})\.parquet")
S, I32, I64, F, B = pa.string(), pa.int32(), pa.int64(), pa.float64(), pa.bool_()
TS = pa.timestamp("us", tz="UTC")

_ID = [("schema_version", pa.int16()), ("campaign", S), ("job_id", S), ("cycle", I32)]
_F = ["duration_s", "tokens_per_s", "total_tokens_per_s", "requests_per_s",
      *[f"{m}_{s}_s" for m in ("latency", "e2e_latency", "ttft", "itl")
        for s in ("mean", "p50", "p90", "p99")],
      "tpot_mean_s", "energy_j", "energy_per_token_j", "energy_per_request_j", "avg_power_w",
      "idle_power_w", "energy_net_j", "energy_net_per_token_j", "gpu_energy_j",
      "gpu_energy_sampled_j", "energy_counter_to_sampled", "cpu_energy_j", "dram_energy_j",
      "model_load_s", "temperature", "top_p", "repetition_penalty", "min_window_s",
      "gpu_power_limit_w", "request_rate", "arrival_rate_achieved", "flops_estimate",
      "tflops_per_s_estimate", "co2_estimate_g", "grid_intensity_g_per_kwh", "idle_s",
      "idle_temperature_c", "idle_sm_clock_mhz", "idle_since_work_s"]
SCHEMAS: dict[str, pa.Schema] = {
    "runs": pa.schema(_ID + [
        ("load_key", S), ("status", S), ("error", S), ("traceback", S),
        ("started_at", TS), ("finished_at", TS),
        ("backend", S), ("model", S), ("dtype", S), ("batch_size", I32),
        ("max_new_tokens", I32), ("min_new_tokens", I32), ("top_k", I32), ("seed", I64),
        ("max_input_tokens", I32), ("streaming", B), ("num_prompts", I32),
        ("dataset_source", S), ("dataset_path", S), ("gpus_per_job", I32),
        ("engine_json", S), ("generate_json", S), ("point_json", S),
        ("cycle_order", S), ("order_seed", I64), ("input_policy", S), ("output_policy", S),
        ("preset", S), ("gap_s", F), ("gap_reached", B), ("start_temperature_c", F),
        ("start_power_w", F), ("gap_target_temperature_c", F), ("gap_target_power_w", F),
        ("attn_implementation", S), ("quantization", S), ("compiled", B), ("adapter", S),
        ("assistant_model", S),
        *[(k, S) for k in ("host", "node_id", "python_version", "llem_version", "llem_commit",
                           "ray_version", "torch_version", "transformers_version",
                           "backend_version", "cpu_model", "driver_version", "cuda_version",
                           "gpu_name", "energy_method", "energy_unavailable",
                           "visible_devices", "python_executable", "env_kind")],
        ("worker_pid", I64), ("model_loads", I32), ("gpu_count", I32),
        ("gpu_uuids", pa.list_(S)), ("mig_mode", B), ("gpu_energy_j_per_gpu", pa.list_(F)),
        ("num_requests", I64), ("input_tokens", I64), ("output_tokens", I64),
        ("repeats", I32), ("warmup_requests", I32), ("warmup_converged", B),
        ("min_window_reached", B), ("idle_just_worked", B), ("arrival", S),
        ("max_concurrency", I32), ("gpu_energy_sampled_j_per_gpu", pa.list_(F)),
        ("idle_power_w_per_gpu", pa.list_(F)),
        # scheduling (llem.scheduler.driver): worker deaths survived, neighbours on the node
        ("attempts", I32), ("exclusive_node", B), ("neighbor_jobs", pa.list_(S)),
        ("neighbor_gpus", pa.list_(S)),
        *[(k, F) for k in _F],
    ]),
    "requests": pa.schema(_ID + [
        ("request_index", I32), ("repeat", I32), ("batch_index", I32), ("input_tokens", I32),
        ("output_tokens", I32),
        *[(k, F) for k in ("arrival_s", "wait_s", "start_s", "end_s", "latency_s",
                           "e2e_latency_s", "ttft_s", "itl_mean_s",
                           "itl_p50_s", "itl_p99_s", "tpot_s")],
        ("token_times_s", pa.list_(F)),
        *[(k, F) for k in ("queue_s", "prefill_s", "decode_s")],
    ]),
    # one row per driver session (llem run / submit): what it ran, model loads, interrupted
    "sessions": pa.schema([
        ("schema_version", pa.int16()), ("campaign", S), ("session_id", S),
        ("started_at", TS), ("finished_at", TS),
        *[(k, I64) for k in ("jobs", "ok", "failed", "skipped", "model_loads", "workers",
                             "retried", "rescheduled", "output_tokens")],
        ("interrupted", B), ("exclusive_node", B), ("elapsed_s", F), ("energy_j", F),
    ]),
    "samples": pa.schema(_ID + [
        ("t_s", F), ("gpu_uuid", S), ("gpu_index", I32),
        *[(k, F) for k in ("power_w", "temperature_c", "sm_clock_mhz", "gpu_util_pct",
                           "mem_used_mib")],
    ]),
}


def to_table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows -> a table with the fixed schema; runs' engine_* columns are appended typed."""
    schema = SCHEMAS[name]
    names = frozenset(schema.names)  # schema.names builds a new list on every access
    extra = sorted({k for r in rows for k in r if k not in names})
    unknown = [k for k in extra if not k.startswith("engine_")]
    if unknown:
        raise ValueError(f"columns not in the {name} schema: {unknown}")
    fixed = [{k: v for k, v in r.items() if k in names} for r in rows]
    for r in fixed:
        for col in ("started_at", "finished_at"):
            if isinstance(r.get(col), float):
                r[col] = int(r[col] * 1e6)
    # int microseconds go straight into timestamp columns: no Table.cast afterwards (a
    # Python-level cast per column, half of this function's time on a one-row runs table)
    table = pa.Table.from_pylist(fixed, schema=schema)
    for k in extra:
        table = table.append_column(k, pa.array([r.get(k) for r in rows]))
    return table


def is_data_path(rel: str) -> bool:
    """Is rel (a path under the store root) named as llem names its data files?"""
    return DATA_PATH.fullmatch(rel.lstrip("/")) is not None


def check_schema_versions(versions: Iterable[int]) -> str | None:
    """A message when the store was written by another schema version."""
    other = sorted({v for v in versions if v != SCHEMA_VERSION})
    if not other:
        return None
    newer = [v for v in other if v > SCHEMA_VERSION]
    if newer:
        return (f"store has schema version {newer[-1]}, newer than this llem's "
                f"{SCHEMA_VERSION}: upgrade llem")
    return (f"store has schema version {other[0]}, older than this llem's {SCHEMA_VERSION}: "
            "re-run the campaign into a new store")
