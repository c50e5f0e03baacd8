"""The runs row's first columns, in the table's order: identity and status, the grid point,
load facts, environment, scheduling, thermal gap, and the window's counts and flags.

Each field is a column, declared once (llem.store.column.col): its group (the section of
docs/schema.md), Arrow type, unit and how it is measured. llem.store.run_row.RunRow adds the
window's figures. Field order is the Parquet column order: a new column goes at the end of
RunRow, and SCHEMA_VERSION (llem.store.schema) is raised when one changes meaning or type.
"""

# ruff: noqa: RUF001, RUF009
# (descriptions quote docs/schema.md, multiplication signs included; col() returns a
# dataclasses.field)

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llem.store.column import I16, I32, I64, LF, LS, TS, B, F, S, col, dynamic


@dataclass(slots=True, kw_only=True)
class RunFields:
    """The runs columns up to neighbor_gpus; None where a value was not measured."""

    schema_version: int | None = col("identity", I16, "-", "Store schema version (see above).")
    campaign: str | None = col(
        "identity", S, "-", "Campaign name from the grid file. Also the hive partition.")
    job_id: str | None = col(
        "identity", S, "-", "16 hex digits of SHA-256 over the point's canonical JSON "
        "(`point_json`). Identifies the configuration, not the cycle.")
    cycle: int | None = col(
        "identity", I32, "-", "Repetition index of this configuration, `0..cycles-1`.")
    load_key: str | None = col(
        "identity", S, "-", "12 hex digits hashing the load-time fields. Jobs with the same key "
        "share one worker and one model load.")
    status: str | None = col("identity", S, "-", "`ok` or `failed`.")
    error: str | None = col(
        "identity", S, "-", "For failed rows, `ExceptionType: message`, at most 2000 characters, "
        "with credentials masked. Null when ok. The driver writes the row itself, with no "
        "environment or measured columns, in two cases: `WorkerDied`, when the worker process "
        "died more than `scheduling.retries` times, and `JobTimeout`, when the job ran past "
        "`measurement.job_timeout_s`.")
    traceback: str | None = col(
        "identity", S, "-", "For failed rows, the last 8000 characters of the Python traceback, "
        "with credentials masked. For a worker process that died, the Ray error.")
    started_at: float | None = col(
        "identity", TS, "UTC time", "Wall clock when the worker took the job, before the thermal "
        "gap and any model load.")
    finished_at: float | None = col(
        "identity", TS, "UTC time", "Wall clock when the result row was built, after the window "
        "closed.")
    backend: str | None = col("config", S, "-", "`transformers`, `vllm`, `tensorrt` or `noop`.")
    model: str | None = col(
        "config", S, "-", "Model id or path as given. `llem:<name>` is a random-weight model that "
        "llem builds offline.")
    dtype: str | None = col(
        "config", S, "-", "Weight dtype asked for (`auto`, `float16`, `bfloat16`, `float32`, "
        "...).")
    batch_size: int | None = col(
        "config", I32, "requests", "Most requests the backend serves at once (one `generate` "
        "call).")
    max_new_tokens: int | None = col("config", I32, "tokens", "Generation cap per request.")
    min_new_tokens: int | None = col(
        "config", I32, "tokens", "Generation floor per request. With `output_policy: fixed` the "
        "backend is given `max_new_tokens` instead.")
    top_k: int | None = col("config", I32, "tokens", "Top-k sampling. 0 means off.")
    seed: int | None = col("config", I64, "-", "Sampling seed.")
    max_input_tokens: int | None = col(
        "config", I32, "tokens", "Prompts are cut to this length. With `input_policy: pad` they "
        "are padded to it. Null means no limit.")
    streaming: bool | None = col(
        "config", B, "-", "Whether the backend stamped each token as it reached the host. Only "
        "then are TTFT, ITL and TPOT measured.")
    num_prompts: int | None = col("config", I32, "prompts", "Prompts in one pass of the workload.")
    dataset_source: str | None = col("config", S, "-", "`builtin`, `file` or `hf`.")
    dataset_path: str | None = col(
        "config", S, "-", "File path or Hugging Face dataset id. Null for builtin.")
    gpus_per_job: int | None = col(
        "config", I32, "GPUs", "GPUs the job asked for. 0 means a CPU job.")
    engine_json: str | None = col(
        "config", S, "-", "The backend's load-time engine arguments as canonical JSON (sorted "
        "keys).")
    generate_json: str | None = col(
        "config", S, "-", "Extra backend-native generate arguments as canonical JSON.")
    point_json: str | None = col(
        "config", S, "-", "The whole resolved point as canonical JSON: dataset, measurement and "
        "resources included. It is what `job_id` hashes.")
    engine_columns: dict[str, Any] = dynamic(
        "engine_<key>", "config", "-", "One column per engine argument (for example "
        "`engine_gpu_memory_utilization`). It has the value's own type (bool, int, float or "
        "string). Lists and maps are stored as JSON text. These columns are added after the "
        "fixed ones, only in campaigns that set them.")
    cycle_order: str | None = col(
        "identity", S, "-", "The campaign's `order`: `interleaved`, `sequential`, `shuffled` or "
        "`williams`.")
    order_seed: int | None = col(
        "identity", I64, "-", "Seed of the shuffle when `order: shuffled` (drawn at run time if "
        "not given). Null otherwise.")
    input_policy: str | None = col(
        "config", S, "-", "`truncate` (cut long prompts) or `pad` (every prompt is exactly "
        "`max_input_tokens`, made by repeating the prompt's own tokens).")
    output_policy: str | None = col(
        "config", S, "-", "`eos` (stop at end-of-sequence) or `fixed` (every request decodes "
        "exactly `max_new_tokens`).")
    preset: str | None = col(
        "config", S, "-", "Name of the sampling preset that filled the unset sampling fields. "
        "Null when none.")
    gap_s: float | None = col(
        "gap", F, "s", "Time spent waiting (monotonic clock). 0 when `thermal_gaps` is off.")
    gap_reached: bool | None = col(
        "gap", B, "-", "Whether every GPU got to its targets before `gap_max_s`. Null when gaps "
        "are off.")
    start_temperature_c: float | None = col(
        "gap", F, "°C", "Hottest GPU's temperature when the gap ended, which is when the job "
        "started.")
    start_power_w: float | None = col(
        "gap", F, "W", "Sum over the job's GPUs of the power read when the gap ended.")
    gap_target_temperature_c: float | None = col(
        "gap", F, "°C", "Lowest per-GPU temperature target.")
    gap_target_power_w: float | None = col("gap", F, "W", "Sum of the per-GPU power targets.")
    attn_implementation: str | None = col(
        "load", S, "-", "The attention kernel transformers chose "
        "(`model.config._attn_implementation`): `sdpa`, `flash_attention_2`, `eager`, ...")
    quantization: str | None = col(
        "load", S, "-", "`bnb-4bit` or `bnb-8bit` when a bitsandbytes quantizer is active on the "
        "loaded model. Null otherwise.")
    compiled: bool | None = col(
        "load", B, "-", "Whether `torch.compile` wrapped the model's forward.")
    adapter: str | None = col(
        "load", S, "-", "PEFT adapter that was loaded. Null when none was loaded.")
    assistant_model: str | None = col(
        "load", S, "-", "Assistant (draft) model used for assisted generation. Null when none.")
    host: str | None = col("env", S, "-", "`socket.gethostname()` of the worker.")
    node_id: str | None = col(
        "env", S, "-", "The Ray node id of the worker (the driver fills it in for rows it "
        "writes).")
    python_version: str | None = col("env", S, "-", "`platform.python_version()`.")
    llem_version: str | None = col("env", S, "-", "`llem.__version__`.")
    llem_commit: str | None = col(
        "env", S, "-", "First 12 hex digits of the llem checkout's git commit, read from `.git`. "
        "Null when llem is installed from a wheel.")
    ray_version: str | None = col("env", S, "-", "Installed `ray` distribution version.")
    torch_version: str | None = col("env", S, "-", "Installed `torch` distribution version.")
    transformers_version: str | None = col(
        "env", S, "-", "Installed `transformers` distribution version.")
    backend_version: str | None = col(
        "env", S, "-", "Version of the backend's package (`transformers`, `vllm`, `tensorrt_llm`; "
        "`llem` for noop).")
    cpu_model: str | None = col("env", S, "-", "`model name` from `/proc/cpuinfo`.")
    driver_version: str | None = col(
        "env", S, "-", "NVIDIA driver version (`nvmlSystemGetDriverVersion`). Null without NVML.")
    cuda_version: str | None = col(
        "env", S, "-", "Highest CUDA version the driver supports "
        "(`nvmlSystemGetCudaDriverVersion_v2`, as `major.minor`). This is not the toolkit torch "
        "was built with.")
    gpu_name: str | None = col("env", S, "-", "NVML name of the job's first GPU.")
    energy_method: str | None = col(
        "env", S, "-", "Energy sources: `nvml_counter`, `rapl`, `nvml_counter+rapl`. Null when "
        "none could be read.")
    energy_unavailable: str | None = col(
        "env", S, "-", "Why `energy_j` is null: no NVML, no readable RAPL, a counter read failed. "
        "Null when energy was measured.")
    visible_devices: str | None = col(
        "env", S, "-", "`CUDA_VISIBLE_DEVICES` as Ray set it for the worker.")
    python_executable: str | None = col(
        "env", S, "-", "`sys.executable` of the worker, which identifies its environment.")
    env_kind: str | None = col(
        "env", S, "-", "How the worker's environment was made (`LLEM_ENV_KIND`, set by the "
        "runtime env llem builds): `current`, `venv`, `pip`, `uv` or `image`. Null when it is not "
        "set.")
    worker_pid: int | None = col(
        "env", I64, "-", "The worker process id. Null when the driver wrote the row because the "
        "worker died.")
    model_loads: int | None = col(
        "env", I32, "loads", "Model loads done so far by this worker process: 1 for its first "
        "load group, 2 once it has moved on to a second (`scheduling.reuse_workers`), and so on. "
        "Each load group loads its model once per worker.")
    gpu_count: int | None = col(
        "env", I32, "GPUs", "GPUs measured for this job: the first `gpus_per_job` entries of "
        "`CUDA_VISIBLE_DEVICES`, matched to NVML.")
    gpu_uuids: list[str] | None = col(
        "env", LS, "-", "NVML UUIDs of the job's GPUs, in `CUDA_VISIBLE_DEVICES` order. The "
        "`*_per_gpu` lists follow this order.")
    mig_mode: bool | None = col(
        "env", B, "-", "True when any of the job's GPUs has MIG enabled (`nvmlDeviceGetMigMode`).")
    gpu_energy_j_per_gpu: list[float | None] | None = col(
        "energy", LF, "J", "Each GPU's counter difference, in `gpu_uuids` order.")
    num_requests: int | None = col(
        "throughput", I64, "requests", "Requests served in the window: `num_prompts × repeats`.")
    input_tokens: int | None = col(
        "throughput", I64, "tokens", "Sum of the requests' prompt tokens, after truncation or "
        "padding, without pad tokens.")
    output_tokens: int | None = col(
        "throughput", I64, "tokens", "Sum of the requests' generated tokens, up to and including "
        "the first EOS.")
    repeats: int | None = col(
        "warmup", I32, "passes", "Passes over the prompt set inside the window. The set repeats "
        "until the window is at least `min_window_s` long, or `max_repeats` is reached.")
    warmup_requests: int | None = col(
        "warmup", I32, "requests", "Requests run in warmup: every batch of the workload once (so "
        "the window meets no input shape for the first time), then the same first batch until the "
        "CV of its last `warmup_window` latencies is below `warmup_cv`, or the cap is reached "
        "(`warmup_requests`, default one pass plus 10 batches).")
    warmup_converged: bool | None = col(
        "warmup", B, "-", "True if the latency CV went below `warmup_cv` before the cap. Null "
        "when warmup is off.")
    min_window_reached: bool | None = col(
        "warmup", B, "-", "`duration_s >= min_window_s`. False means `max_repeats` stopped it "
        "first.")
    idle_just_worked: bool | None = col(
        "idle", B, "-", "`idle_since_work_s < 30`. A \"hot\" baseline, higher than a cold one.")
    arrival: str | None = col(
        "config", S, "-", "`offline` (every request of a pass queued at its start), `poisson` or "
        "`constant`.")
    max_concurrency: int | None = col(
        "config", I32, "requests", "Configured cap on requests in flight. The effective cap is "
        "`min(batch_size, max_concurrency)`.")
    gpu_energy_sampled_j_per_gpu: list[float | None] | None = col(
        "energy", LF, "J", "The same for each GPU, in `gpu_uuids` order.")
    idle_power_w_per_gpu: list[float | None] | None = col(
        "idle", LF, "W", "The same for each GPU, in `gpu_uuids` order.")
    attempts: int | None = col(
        "scheduling", I32, "attempts", "Times the job was sent to a worker: 1, plus one per "
        "worker process that died while running it (OOM kill, segfault). It is retried up to "
        "`scheduling.retries` times.")
    exclusive_node: bool | None = col(
        "scheduling", B, "-", "The `scheduling.exclusive_node` setting: whether no other measured "
        "job could share this job's node.")
    cpu_jobs_per_node: int | None = col(
        "scheduling", I32, "jobs", "The `scheduling.cpu_jobs_per_node` setting: how many "
        "CPU-measured jobs (`gpus_per_job` 0) the driver let run at once on one node. Those "
        "share the node's cores and RAPL package; the default 1 keeps them apart.")
    neighbor_jobs: list[str] | None = col(
        "scheduling", LS, "-", "`<job_id>-c<cycle>` of other jobs that ran on the same Ray node "
        "and overlapped this job's `[started_at, finished_at]`. A neighbour shares CPU, memory "
        "bandwidth and power delivery, so read energy with care when this list is not empty.")
    neighbor_gpus: list[str] | None = col(
        "scheduling", LS, "-", "One entry per `neighbor_jobs` entry: the neighbour's GPUs "
        "(comma-joined UUIDs, or its `CUDA_VISIBLE_DEVICES`).")
    timeline_index: int | None = col(
        "scheduling", I64, "-", "The job's place in the campaign's planned order, from 0: "
        "groups in the order the driver queues them (with `interleave: groups`, cycle 0 of "
        "every load group before cycle 1 of any), each group's jobs in its `order`. The same "
        "on every session of the campaign (a resumed run skips numbers, it does not renumber); "
        "there may be gaps. On one GPU a fresh run starts jobs in this order; several GPUs run "
        "groups side by side (`campaign_elapsed_s` says when each did start). Plot or regress "
        "a metric on it to see drift. Null in stores written before it was recorded.")
    campaign_elapsed_s: float | None = col(
        "scheduling", F, "s", "Seconds from the session's start (the driver's clock, "
        "`sessions.started_at`) to the job's `started_at` (the worker's clock: across machines "
        "it includes their clock offset). Counts from each session's own start: group by "
        "`session_id` when a campaign was resumed.")
