"""The config's shapes: Campaign (the file as written) and Point (one resolved configuration).

A Point is what a job measures; everything in it is part of the job_id. Engine parameters
are a pass-through dict: llem never re-declares a library's flags."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llem.backends import REGISTRY
from llem.config.modes import level_problem, level_time_problem, point_resets, profile_resets
from llem.config.vocab import DTYPE_ALIASES, DTYPES, PRESETS
from llem.config.yaml_source import INT64, shown

# What the store can hold (llem.store.run_fields; tests/unit/config checks its schema): these
# Point paths are int32 in runs, seed and order_seed int64, other whole numbers at most int64.
INT32_MAX = 2**31 - 1
STORED_INT32 = ("batch_size", "max_new_tokens", "min_new_tokens", "top_k", "max_input_tokens",
                "dataset.num_prompts", "resources.gpus_per_job", "measurement.max_concurrency")
MIN_RATE = 1e-3  # requests/s: slower schedules reach past any job's time (and timestamps)
MAX_RATE = 1e6
MAX_JOB_S = 7 * 86_400  # a week: the longest any one job or wait may be asked to take
MAX_POINTS = 10_000_000  # max_points' own bound (a dry run walks every point)
MAX_RULES = 1000  # include/exclude rules each (every pair is compared, every point matched)
YAML_BOOLS = "yes/no/on/off/true/false are YAML booleans"

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class Strict(BaseModel):
    """Unknown keys are errors; values are checked, never coerced across types (a boolean is
    not a number, text is not a number; a whole number is a fine float); numbers are finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def not_blank(cls: type, v: str | None) -> str | None:
    """A text setting written blank: an error, not a silent "none" (a field validator)."""
    if v is not None and not v.strip():
        raise ValueError("is empty: give a value, or remove the key for the default")
    return v


def check_name(value: str, what: str = "name") -> str:
    """A value that becomes part of a path: no separators, no '..', no control characters."""
    if not NAME_RE.match(value) or ".." in value:
        raise ValueError(f"{what} {value!r} must be 1-100 characters of letters, digits, '_', "
                         "'-', '.', start with a letter or digit, and not contain '..'")
    return value


class Dataset(Strict):
    """Where prompts come from. builtin: the set shipped with llem."""

    source: Literal["builtin", "file", "hf", "ai_energy_score"] = "builtin"
    path: str | None = None  # file path, or HF dataset id
    split: str = "train"
    column: str | None = None  # HF column with the prompt text; auto-detected when None
    num_prompts: int = Field(32, ge=1, le=1_000_000)
    seed: int = Field(0, ge=INT64[0], le=INT64[1])
    # sample: num_prompts drawn in a seeded order; file: the first num_prompts in the
    # source's own order (cycling past its end). Left out of the job_id at its default.
    order: Literal["sample", "file"] = Field("sample", exclude_if=lambda v: v == "sample")

    @field_validator("path")
    @classmethod
    def _no_nul(cls, v: str | None) -> str | None:
        if v is not None and ("\x00" in v or not v.strip()):
            raise ValueError("path must be a non-empty string")
        return v

    _split_column = field_validator("split", "column")(not_blank)  # '' was no split/column


class Measurement(Strict):
    """How a job is measured; recorded with every result (llem.harness.runner, README "How llem
    measures")."""

    # Warmup: every batch of the workload once, then the first batch until the last
    # warmup_window batch latencies have a CV below warmup_cv, or warmup_requests requests
    # ran (the cap; None: one pass plus 10 batches); 0 turns it off.
    warmup_requests: int | None = Field(None, ge=0, le=100_000)
    warmup_cv: float = Field(0.05, gt=0, le=10)
    warmup_window: int = Field(3, ge=2, le=1000)
    # Repeat the workload until the window is this long. None: 10 s when the job's energy
    # comes from a GPU energy counter (its ~100 ms resolution is then < 1%), else 0.
    min_window_s: float | None = Field(None, ge=0, le=3600)
    max_repeats: int = Field(10_000, ge=1, le=INT32_MAX)
    sample_hz: float = Field(10.0, gt=0, le=1000)
    # Idle baseline per GPU before warmup (after the thermal gap); 0 turns it off.
    idle_baseline_s: float = Field(5.0, ge=0, le=600)
    # Request arrivals (as vLLM's benchmark): request_rate None is offline (all queued at
    # once); else requests arrive at request_rate per second, with exponential (poisson,
    # seeded by arrival_seed) or constant gaps. max_concurrency caps requests in flight.
    request_rate: float | None = Field(None, ge=MIN_RATE, le=MAX_RATE)
    arrival: Literal["poisson", "constant"] = "poisson"
    arrival_seed: int = Field(0, ge=INT64[0], le=INT64[1])
    max_concurrency: int | None = Field(None, ge=1, le=INT32_MAX)
    # CO2 estimate = energy x this grid carbon intensity (gCO2e/kWh); None: no estimate.
    grid_intensity_g_per_kwh: float | None = Field(None, ge=0, le=5000)
    job_timeout_s: float = Field(3600.0, gt=0, le=MAX_JOB_S)
    # Thermal gaps (llem.measure.thermal): before each job, wait (gap_max_s at most) until its
    # GPUs are near idle (within the margins of the coolest state seen; or gap_idle_temp_c).
    thermal_gaps: bool = True
    gap_max_s: float = Field(60.0, ge=0, le=3600)
    gap_temp_margin_c: float = Field(3.0, ge=0, le=100)
    gap_power_margin_w: float = Field(15.0, ge=0, le=100_000)
    gap_idle_temp_c: float | None = Field(None, ge=0, le=120)
    gap_poll_s: float = Field(0.5, gt=0, le=60)

    # Fields added after stores were written are left out of the point's dump (and so of
    # its job_id, llem.config.job) while at their default: a point that does not use them
    # keeps the job_id it always had, and resume still finds it.

    # Idle baseline (llem.measure.meter): per_job measures idle_baseline_s before every
    # job; per_worker once per model load on the worker; cached as per_worker, measured
    # again when older than idle_max_age_s or when a idle_check_s check before the job
    # differs from it by more than idle_check_tolerance (relative). cached is the default:
    # energy_j and J/token never depend on the baseline (only the net figures do), and the
    # check re-measures it whenever the GPU's idle state moved (README "How llem measures").
    idle_baseline: Literal["per_job", "per_worker", "cached"] = Field(
        "cached", exclude_if=lambda v: v == "cached")
    idle_max_age_s: float = Field(600.0, gt=0, le=MAX_JOB_S, exclude_if=lambda v: v == 600.0)
    idle_check_s: float = Field(1.0, gt=0, le=60, exclude_if=lambda v: v == 1.0)
    idle_check_tolerance: float = Field(0.1, gt=0, le=10, exclude_if=lambda v: v == 0.1)
    # Warmup shared within a load group: batches this worker already ran with the same
    # generation settings since the model loaded are not run again in the pass over every
    # batch (their kernels are built); the convergence runs as before.
    warmup_share: bool = Field(True, exclude_if=lambda v: v is True)
    # Energy boundary: gpu (the job's GPUs' energy counters) or node (those plus the host's
    # CPU packages and DRAM from RAPL; energy_j is null without RAPL). pue (node only)
    # scales the node's energy into energy_facility_j_estimate.
    boundary: Literal["gpu", "node"] = Field("gpu", exclude_if=lambda v: v == "gpu")
    pue: float | None = Field(None, ge=1.0, le=5.0, exclude_if=lambda v: v is None)
    # Grid carbon intensity looked up in codecarbon's bundled data (offline): a country's
    # ISO 3166-1 alpha-3 code (FRA), or a cloud region ({provider: gcp, region:
    # europe-west1}); grid_intensity_g_per_kwh gives the number instead. At most one.
    country: str | None = Field(None, exclude_if=lambda v: v is None)
    cloud: dict[str, str] | None = Field(None, exclude_if=lambda v: v is None)
    # Prefill measured apart from decode: a window of prefill-only passes (1 output token,
    # the same batches) before the full workload's window (prefill_energy_j,
    # decode_energy_per_token_j).
    phases: bool = Field(False, exclude_if=lambda v: v is False)
    # Cross-GPU calibration (llem.measure.calibration): at the campaign's start one reference
    # job (the campaign's first GPU configuration's first job) runs on every GPU set of the
    # cluster; rows keep their raw energy and add energy normalised by each GPU's factor
    # (its reference energy per token over its model's mean).
    calibrate: bool = Field(False, exclude_if=lambda v: v is False)
    # Energy validity (energy_valid, energy_invalid_reasons; llem.measure.validity): the
    # window spans at least valid_min_counter_periods of the energy counter's measured
    # update period; samples cover at least valid_min_sample_coverage of it; the counter
    # and the sampled power agree within valid_max_counter_sampled_gap (relative); the
    # GPUs spent at most valid_max_throttle_share of it slowed by valid_throttle_reasons
    # (NVML clock event reasons); warmup converged (valid_require_warmup_converged).
    valid_min_counter_periods: float = Field(50.0, ge=0, le=1e6,
                                             exclude_if=lambda v: v == 50.0)
    valid_min_sample_coverage: float = Field(0.9, ge=0, le=1, exclude_if=lambda v: v == 0.9)
    valid_max_counter_sampled_gap: float = Field(0.1, ge=0, le=100,
                                                 exclude_if=lambda v: v == 0.1)
    valid_max_throttle_share: float = Field(0.05, ge=0, le=1, exclude_if=lambda v: v == 0.05)
    valid_throttle_reasons: list[str] = Field(
        default_factory=lambda: ["hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown",
                                 "hw_power_brake_slowdown"],
        exclude_if=lambda v: v == ["hw_slowdown", "sw_thermal_slowdown",
                                   "hw_thermal_slowdown", "hw_power_brake_slowdown"])
    valid_require_warmup_converged: bool = Field(True, exclude_if=lambda v: v is True)

    @field_validator("country")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Z]{3}", v):
            raise ValueError(f"country must be an ISO 3166-1 alpha-3 code in capitals, e.g. "
                             f"FRA or USA (got {shown(v)})")
        return v

    @field_validator("cloud")
    @classmethod
    def _cloud(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is not None and (sorted(v) != ["provider", "region"] or
                              v["provider"] not in ("gcp", "aws", "azure")):
            raise ValueError("cloud must be {provider: gcp|aws|azure, region: <its region "
                             "name>}, e.g. {provider: gcp, region: europe-west1}")
        return v

    @field_validator("valid_throttle_reasons")
    @classmethod
    def _reasons(cls, v: list[str]) -> list[str]:
        known = ("gpu_idle", "applications_clocks_setting", "sw_power_cap", "hw_slowdown",
                 "sync_boost", "sw_thermal_slowdown", "hw_thermal_slowdown",
                 "hw_power_brake_slowdown", "display_clock_setting", "board_limit",
                 "reliability")  # llem.measure.gpu.CLOCK_EVENTS' names
        bad = [r for r in v if r not in known]
        if bad:
            raise ValueError(f"unknown clock event reason {shown(bad[0])}; use any of "
                             f"{', '.join(known)}")
        return v

    @model_validator(mode="after")
    def _carbon(self) -> Measurement:
        given = [k for k in ("grid_intensity_g_per_kwh", "country", "cloud")
                 if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"set one of grid_intensity_g_per_kwh, country, cloud (got "
                             f"{' and '.join(given)})")
        if self.pue is not None and self.boundary != "node":
            raise ValueError("pue scales the node's energy: it needs boundary: node")
        return self


class Server(Strict):
    """Server mode: the load one job puts on the backend's server (llem.harness.server).

    A job is one rate level: the worker keeps its load group's server up across levels.
    Open-loop profiles (constant, poisson, gamma) send at `rate` requests/s whatever the
    server does; closed-loop `concurrency` keeps that many requests in flight; `sweep`
    expands into sweep_levels + 2 jobs: the synchronous rate (level 0), the maximum
    throughput (level sweep_levels + 1), and rates spread between them (guidellm's sweep).
    """

    profile: Literal["constant", "poisson", "gamma", "concurrency", "sweep"] = "poisson"
    rate: float | None = Field(None, ge=MIN_RATE, le=100_000)  # requests/s (open-loop)
    burstiness: float = Field(1.0, gt=0, le=1000)  # gamma's shape k: 1 is Poisson, < 1 bursty
    concurrency: int | None = Field(None, ge=1, le=100_000)  # requests in flight (closed loop)
    sweep_levels: int = Field(4, ge=1, le=64)
    sweep_level: int | None = Field(None, ge=0, le=65)  # set by the sweep's expansion
    requests: int | None = Field(None, ge=1, le=10_000_000)  # measured requests per level
    duration_s: float | None = Field(None, gt=0, le=86_400)  # or a duration per level (both:
    # the level ends at whichever is reached first, llem.harness.server.loadgen)
    ramp_s: float = Field(0.0, ge=0, le=3600)  # rate rises to target; never measured
    warmup_requests: int = Field(0, ge=0, le=100_000)  # sent (and discarded) before the ramp
    api: Literal["completions", "chat"] = "completions"
    seed: int = Field(0, ge=0, le=2**63 - 1)  # arrivals of poisson and gamma
    slo_ttft_s: float | None = Field(None, gt=0, le=3600)  # a request meets the SLO when
    slo_tpot_s: float | None = Field(None, gt=0, le=3600)  # its TTFT and TPOT are within
    startup_timeout_s: float = Field(600.0, gt=0, le=7200)  # the server's health wait

    @model_validator(mode="after")
    def _profile(self) -> Server:
        why = level_problem(self)  # a level that could not be measured (llem.config.modes)
        if why:
            raise ValueError(why)
        for name, value in profile_resets(self).items():  # unused (llem.config.modes)
            object.__setattr__(self, name, value)
        return self


class Resources(Strict):
    """What one job needs; a measured job owns its GPUs exclusively."""

    gpus_per_job: int = Field(0, ge=0, le=64)  # 0: run on the CPU
    cpus_per_job: float = Field(1.0, ge=0, le=100_000)
    accelerator_type: str | None = None  # Ray accelerator_type, e.g. "H100"
    custom: dict[str, float] = Field(default_factory=dict)  # Ray custom resources

    _accelerator = field_validator("accelerator_type")(not_blank)  # '' was no constraint

    @field_validator("cpus_per_job")
    @classmethod
    def _cpus(cls, v: float) -> float:
        return _ray_amount(v, "cpus_per_job")

    @field_validator("custom")
    @classmethod
    def _amounts(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k, n in v.items() if not 0 <= n <= 1e9]
        if bad:
            raise ValueError(f"custom resource '{bad[0]}' must be between 0 and 1e9")
        for k, n in v.items():
            if k in RAY_RESOURCES or k.startswith(("node:", "accelerator_type:")):
                raise ValueError(f"'{k}' is a resource Ray sets itself, not a custom one "
                                 "(use resources.gpus_per_job, cpus_per_job or "
                                 "accelerator_type)")
            _ray_amount(n, f"custom resource '{k}'")
        return v


RAY_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")


def _ray_amount(v: float, what: str) -> float:
    """Ray counts a resource in steps of 0.0001 and fails at the actor's creation, after Ray
    started, on a finer amount."""
    if abs(v * 10_000 - round(v * 10_000)) > 1e-6:
        raise ValueError(f"{what} must be a multiple of 0.0001, the finest amount Ray "
                         f"schedules (got {v:g})")
    return v


class Scheduling(Strict):
    """How the driver places and retries jobs; not part of any job_id (llem.scheduler.driver)."""

    # a job whose worker process died (OOM kill, segfault) is run again this many times
    retries: int = Field(2, ge=0, le=100)
    # restarts of one worker actor (Ray max_restarts) before its group is given up
    max_restarts: int = Field(5, ge=0, le=1000)
    # one measured job per node: no neighbours share its CPUs, memory bandwidth or power
    exclusive_node: bool = False
    # CPU-measured jobs (gpus_per_job 0) one node runs at once: they share its cores and its
    # RAPL package, so two at once measure each other (llem.scheduler.placement.Books)
    cpu_jobs_per_node: int = Field(1, ge=1, le=INT32_MAX)
    # a running group gets one more worker on an idle GPU set when that finishes it sooner
    # (its jobs left per worker outlast a worker start and model load: decided by time,
    # llem.scheduler.core.split_gain) and each worker's piece has at least this many jobs;
    # 1: time alone decides (simulated, 1,024 GPUs: 1.12x the bound against 1.14x with 2)
    split_min_jobs: int = Field(1, ge=1, le=INT32_MAX)
    # seconds a worker may take to start (runtime env, imports) before the job fails
    start_timeout_s: float = Field(600.0, gt=0, le=MAX_JOB_S)
    # a worker whose group is done serves the next group of the same backend and resources
    # in its process (the model is closed, the next loaded) instead of a fresh process;
    # only for backends that free memory on close (Backend.reloads_in_process)
    reuse_workers: bool = True


class Point(Strict):
    """One resolved configuration: a grid point. Its canonical JSON hashes to the job_id."""

    backend: str
    model: str
    dtype: str = "auto"
    batch_size: int = Field(1, ge=1, le=65536)
    max_new_tokens: int = Field(64, ge=1, le=1_000_000)
    min_new_tokens: int = Field(0, ge=0, le=1_000_000)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, le=INT32_MAX)
    repetition_penalty: float = Field(1.0, gt=0)
    seed: int = Field(0, ge=INT64[0], le=INT64[1])
    max_input_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
    # truncate: prompts longer than max_input_tokens are cut (the start is kept);
    # pad: also extend shorter ones to exactly max_input_tokens by repeating their own tokens.
    input_policy: Literal["truncate", "pad"] = "truncate"
    # eos: stop at end-of-sequence or max_new_tokens; fixed: every request decodes exactly
    # max_new_tokens (min_new_tokens is raised to it).
    output_policy: Literal["eos", "fixed"] = "eos"
    preset: str | None = None  # a PRESETS name; fills the sampling fields not written
    streaming: bool = False
    engine: dict[str, Any] = Field(default_factory=dict)  # backend's load-time args, untouched
    generate: dict[str, Any] = Field(default_factory=dict)  # backend-native generate kwargs
    # offline: batches handed to the library in the worker; server: the backend's own
    # OpenAI-compatible server under the load of `server` (llem.harness.server)
    mode: Literal["offline", "server"] = "offline"
    server: Server | None = None
    dataset: Dataset = Dataset()
    measurement: Measurement = Measurement()
    resources: Resources = Resources()

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("preset"), str) and \
                data["preset"] in PRESETS:  # an unknown one: the field's own error (_preset)
            data = {**PRESETS[data["preset"]], **data}
        return data

    @field_validator("preset")
    @classmethod
    def _preset(cls, v: str | None) -> str | None:
        if v is not None and v not in PRESETS:
            raise ValueError(f"unknown preset {shown(v)}; use one of {', '.join(PRESETS)}")
        return v

    @model_validator(mode="after")
    def _mode(self) -> Point:
        if self.mode == "server" and self.server is None:
            raise ValueError("mode: server needs a server: section (its load: profile, rate "
                             "or concurrency, requests or duration_s)")
        if why := level_time_problem(self):
            raise ValueError(why)
        for name, value in point_resets(self).items():  # unused (llem.config.modes)
            object.__setattr__(self, name, value)
        return self

    @model_validator(mode="after")
    def _lengths(self) -> Point:
        if self.input_policy == "pad" and self.max_input_tokens is None:
            raise ValueError("input_policy: pad needs max_input_tokens (the length to pad to)")
        if self.output_policy == "eos" and self.min_new_tokens > self.max_new_tokens:
            raise ValueError(f"min_new_tokens ({self.min_new_tokens}) is over max_new_tokens "
                             f"({self.max_new_tokens})")
        return self

    @field_validator("dtype", mode="before")
    @classmethod
    def _dtype(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = DTYPE_ALIASES.get(v.lower(), v.lower())
            if v not in DTYPES:
                raise ValueError(f"unknown dtype {v!r}; use one of {', '.join(DTYPES)} "
                                 f"(or {', '.join(DTYPE_ALIASES)})")
        return v


SECTIONS = ("dataset", "measurement", "resources", "server")
# one section per registered backend (llem.backends): its engine args, passed untouched
ENGINE_SECTIONS = tuple(REGISTRY)

