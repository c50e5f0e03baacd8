"""The runs row as a typed record, and a job's result as it crosses from worker to driver.

RunRow's fields are the runs table's columns (RunFields, then the window's figures here),
each declared once with its Arrow type, unit and description (llem.store.column.col):
the harness fills it (llem.harness.result), the driver sets the scheduling fields
(llem.scheduler.driver), the store turns it into the Parquet row (row(), to_table). It
holds plain values only: Ray pickles it, and the driver has no torch.
"""

# ruff: noqa: RUF001 (descriptions quote docs/schema.md, multiplication signs included)

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llem.store.calibration_fields import CalibrationFields
from llem.store.column import F, S, col, columns_of


@dataclass(slots=True, kw_only=True)
class RunRow(CalibrationFields):
    """One runs row (one job and cycle); None where a value was not measured."""

    duration_s: float | None = col(
        "throughput", F, "s", "Window length, from the counter read at its start to the one at "
        "its end (`perf_counter`). It covers all repeats. It excludes gap, load, idle baseline "
        "and warmup.")
    tokens_per_s: float | None = col("throughput", F, "tokens/s", "`output_tokens / duration_s`.")
    total_tokens_per_s: float | None = col(
        "throughput", F, "tokens/s", "`(input_tokens + output_tokens) / duration_s`.")
    requests_per_s: float | None = col(
        "throughput", F, "requests/s", "`num_requests / duration_s`.")
    latency_mean_s: float | None = col("throughput", F, "s", "Mean of `requests.latency_s`.")
    latency_p50_s: float | None = col("throughput", F, "s", "Median of `requests.latency_s`.")
    latency_p90_s: float | None = col(
        "throughput", F, "s", "90th percentile of `requests.latency_s`.")
    latency_p99_s: float | None = col(
        "throughput", F, "s", "99th percentile of `requests.latency_s`.")
    e2e_latency_mean_s: float | None = col(
        "throughput", F, "s", "Mean of `requests.e2e_latency_s`, which includes queueing after "
        "arrival.")
    e2e_latency_p50_s: float | None = col(
        "throughput", F, "s", "Median of `requests.e2e_latency_s`.")
    e2e_latency_p90_s: float | None = col(
        "throughput", F, "s", "90th percentile of `requests.e2e_latency_s`.")
    e2e_latency_p99_s: float | None = col(
        "throughput", F, "s", "99th percentile of `requests.e2e_latency_s`.")
    ttft_mean_s: float | None = col(
        "throughput", F, "s", "Mean of `requests.ttft_s`. Streaming only, null otherwise.")
    ttft_p50_s: float | None = col(
        "throughput", F, "s", "Median of `requests.ttft_s`. Streaming only.")
    ttft_p90_s: float | None = col(
        "throughput", F, "s", "90th percentile of `requests.ttft_s`. Streaming only.")
    ttft_p99_s: float | None = col(
        "throughput", F, "s", "99th percentile of `requests.ttft_s`. Streaming only.")
    itl_mean_s: float | None = col(
        "throughput", F, "s", "Mean inter-token latency: all gaps between consecutive token "
        "arrivals of every streamed request, pooled, so long requests weigh more. Streaming only.")
    itl_p50_s: float | None = col(
        "throughput", F, "s", "Median of the pooled inter-token gaps. Streaming only.")
    itl_p90_s: float | None = col(
        "throughput", F, "s", "90th percentile of the pooled inter-token gaps. Streaming only.")
    itl_p99_s: float | None = col(
        "throughput", F, "s", "99th percentile of the pooled inter-token gaps. Streaming only.")
    tpot_mean_s: float | None = col(
        "throughput", F, "s", "Mean over streamed requests of `requests.tpot_s`, each request "
        "weighted equally. Streaming only.")
    energy_j: float | None = col(
        "energy", F, "J", "**The headline energy.** For GPU jobs it is the sum, over the job's "
        "GPUs, of the NVML energy counter difference across the window (null if any GPU's read "
        "failed). For CPU jobs (`gpus_per_job: 0`) it is the RAPL package plus DRAM energy across "
        "the window. On GPU jobs, host RAPL energy is not included here; it is in "
        "`cpu_energy_j`/`dram_energy_j`.")
    energy_per_token_j: float | None = col(
        "energy", F, "J/token", "`energy_j / output_tokens`. Generated tokens only.")
    energy_per_request_j: float | None = col("energy", F, "J/request", "`energy_j / num_requests`.")
    avg_power_w: float | None = col("energy", F, "W", "`energy_j / duration_s`.")
    idle_power_w: float | None = col(
        "idle", F, "W", "Sum over the job's GPUs of (NVML energy counter difference across the "
        "idle period) / (idle period). Null when any GPU's counter failed or the baseline is off.")
    energy_net_j: float | None = col(
        "energy", F, "J", "`energy_j - idle_power_w × duration_s`: energy above the idle "
        "baseline. Null without a baseline.")
    energy_net_per_token_j: float | None = col(
        "energy", F, "J/token", "`energy_net_j / output_tokens`.")
    gpu_energy_j: float | None = col(
        "energy", F, "J", "Sum over GPUs of the counter differences. It equals `energy_j` on GPU "
        "jobs and is null on CPU jobs.")
    gpu_energy_sampled_j: float | None = col(
        "energy", F, "J", "Sum over GPUs of the trapezoidal integral of the sampled power "
        "(`samples.power_w` over `samples.t_s`). This is an independent cross-check of the "
        "counter. It is null when a GPU has fewer than 2 power samples.")
    energy_counter_to_sampled: float | None = col(
        "energy", F, "ratio", "`gpu_energy_j / gpu_energy_sampled_j`. Near 1 when sampling caught "
        "the power profile. A large gap points to power spikes shorter than the sampling period, "
        "or to a 1 s averaged power reading.")
    cpu_energy_j: float | None = col(
        "energy", F, "J", "Sum over RAPL `package-*` zones of the counter difference across the "
        "window. Null without readable RAPL.")
    dram_energy_j: float | None = col(
        "energy", F, "J", "RAPL `dram` zone difference across the window. Null when the CPU has "
        "no DRAM zone.")
    model_load_s: float | None = col(
        "env", F, "s", "Time the worker took to load the model (backend constructor, and building "
        "an `llem:` model into the cache when needed), measured with `perf_counter`. Repeated on "
        "every job the load served. Not part of the window.")
    temperature: float | None = col("config", F, "-", "Sampling temperature. 0 means greedy.")
    top_p: float | None = col("config", F, "-", "Nucleus sampling threshold.")
    repetition_penalty: float | None = col("config", F, "-", "Repetition penalty.")
    min_window_s: float | None = col(
        "config", F, "s", "The window floor in effect. In ok rows it is the configured value, or "
        "by default 10 s when a GPU energy counter measures the job (its ~100 ms update period is "
        "then under 1% of the window) and 0 otherwise. In failed rows it is the configured value "
        "(null means the default).")
    gpu_power_limit_w: float | None = col(
        "env", F, "W", "Enforced power limit of the first GPU (`nvmlDeviceGetEnforcedPowerLimit`, "
        "mW / 1000).")
    request_rate: float | None = col(
        "config", F, "requests/s", "Configured arrival rate. Null means offline.")
    arrival_rate_achieved: float | None = col(
        "warmup", F, "requests/s", "The rate the schedule actually produced: (n - 1) / (last "
        "arrival - first arrival) over the window's requests. Null for offline.")
    flops_estimate: float | None = col(
        "energy", F, "FLOP", "**Estimate** of the forward-pass FLOPs of the window's requests, "
        "computed from the model config (`llem/measure/flops.py`). Per request it is "
        "`2·N_layers·T + 2·hidden·vocab·n_out + 4·layers·heads·head_dim·T(T+1)/2`, with `T = n_in "
        "+ n_out - 1` and `N_layers` the weights of the attention and MLP matrices. Embeddings, "
        "norms and padding are left out. It is null for mixture-of-experts models and for configs "
        "without the needed dimensions.")
    tflops_per_s_estimate: float | None = col(
        "energy", F, "TFLOP/s", "**Estimate**: `flops_estimate / 1e12 / duration_s`.")
    co2_estimate_g: float | None = col(
        "energy", F, "g CO2e", "**Estimate**: `(energy_j + host RAPL energy on GPU jobs of "
        "boundary gpu) / 3.6e6 × grid_intensity_g_per_kwh`; on boundary node with `pue`, "
        "`energy_facility_j_estimate` instead of the bracket. Null without a grid intensity.")
    grid_intensity_g_per_kwh: float | None = col(
        "config", F, "gCO2e/kWh", "Grid carbon intensity used for `co2_estimate_g`: given in "
        "the grid file, or looked up in codecarbon's bundled data for `measurement.country` or "
        "`measurement.cloud` (`grid_intensity_source` says which). Null when none.")
    idle_s: float | None = col("idle", F, "s", "Measured length of the idle period.")
    idle_temperature_c: float | None = col(
        "idle", F, "°C", "Hottest GPU's temperature at the start of the idle period.")
    idle_sm_clock_mhz: float | None = col(
        "idle", F, "MHz", "Highest SM clock (`nvmlDeviceGetClockInfo(NVML_CLOCK_SM)`) at the "
        "start of the idle period.")
    idle_since_work_s: float | None = col(
        "idle", F, "s", "Time since this worker's GPUs last finished work (model load, warmup, or "
        "the previous window), when the idle period started. Null when they never worked.")
    session_id: str | None = col(
        "identity", S, "-", "The driver session that measured the row (`sessions.session_id`, "
        "also the end of its file names): a job and cycle measured again (`llem run --rerun`, "
        "or a failed job run again on resume) has one row per session. The `runs` view shows "
        "the newest measurement of each job and cycle, `runs_all` every one. Null in stores "
        "written before sessions were recorded.")

    def update(self, values: Mapping[str, Any]) -> None:
        """Set columns from a helper's {column: value} (llem.measure's gap, idle baseline and
        latency summaries, a backend's load facts); a name that is no column is an error."""
        unknown = sorted(k for k in values if k not in _FIXED)
        if unknown:
            raise ValueError(f"not runs columns: {unknown}")
        for k, v in values.items():
            setattr(self, k, v)

    @property
    def key(self) -> tuple[str, int]:
        """(job_id, cycle), as llem.config.job.Job.key: every row has both."""
        if self.job_id is None or self.cycle is None:
            raise ValueError("a runs row needs its job_id and cycle")
        return self.job_id, self.cycle

    def row(self) -> dict[str, Any]:
        """The Parquet row: every fixed column in order, then the engine_<key> columns."""
        return {**{name: getattr(self, name) for name in NAMES}, **self.engine_columns}


RUN_COLUMNS = columns_of(RunRow)
NAMES = tuple(c.name for c in RUN_COLUMNS if not c.dynamic)  # the fixed columns, in order
_FIXED = frozenset(NAMES)


@dataclass(slots=True)
class Result:
    """A job's result: its runs row, its requests rows and GPU samples (plain dicts, columns
    as llem.store.columns declares them). A worker returns it (Ray pickles it), the driver
    stores it (Store.write_result); on_result callbacks get its run."""

    run: RunRow
    requests: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
