"""The columns of "measurement you can defend": whether a row's energy can be trusted and the
checks behind it (llem.measure.validity), where its power came from, the energy boundary,
the grid intensity's source, how the idle baseline and the warmup were obtained, and the
prefill/decode split. Filled by llem.harness.result; null on rows written before.

VALID_SQL is the rule the `stats` view (llem.store.query) applies on top of energy_valid,
for what only the driver knows after the worker has built the row: its neighbours.
"""

# ruff: noqa: RUF001, RUF009
# (descriptions quote docs/schema.md; col() returns a dataclasses.field)

from __future__ import annotations

from dataclasses import dataclass

from llem.store.column import I32, LS, B, Column, F, S, col
from llem.store.server_fields import ServerFields

THRESHOLDS = "`measurement.valid_*`"


@dataclass(slots=True, kw_only=True)
class ValidityFields(ServerFields):
    """Runs columns of the energy's validity, boundary, carbon source, idle and warmup reuse
    and phases."""

    energy_valid: bool | None = col(
        "validity", B, "-", "Whether the row's energy can be trusted: true when every check "
        f"below passed its threshold ({THRESHOLDS}), false when one failed (the reasons are in "
        "`energy_invalid_reasons`). Null when the row has no measured energy (nothing to "
        "judge: no NVML and no RAPL, a failed row, rows written before this column). The "
        "`stats` view leaves out rows where it is false, and those with a neighbour that "
        "shares their GPUs or, on boundary node, their node (`stats_all` keeps them).")
    energy_invalid_reasons: list[str] | None = col(
        "validity", LS, "-", "One entry per failed check, `code: numbers`: `short_window`, "
        "`counter_period_unmeasured`, `low_sample_coverage`, `counter_vs_sampled`, "
        "`throttled`, `warmup_not_converged`. Empty when valid.")
    energy_counter_period_s: float | None = col(
        "validity", F, "s", "The energy counter's update period, measured once per worker "
        "before its first window, as Zeus measures it: the counter is polled (every 2 ms; one "
        "NVML read costs ~4 ms) until its value changes, then the next 4 changes are timed and "
        "the median gap kept. The slowest of the job's GPUs; RAPL's on CPU jobs (then it is "
        "bounded below by the poll). Null when the counter did not change within 3 s.")
    window_counter_periods: float | None = col(
        "validity", F, "periods", "`duration_s / energy_counter_period_s`. Each edge reads the "
        "counter as it was at its last update, up to one period late; the two lags cancel in "
        "part, so at steady power the counter misses less than one period's energy: under "
        "1 / this of the window's. Invalid under `valid_min_counter_periods` (50, so 2%).")
    sample_coverage: float | None = col(
        "validity", F, "ratio", "Share of the window covered by power samples at the asked "
        "`sample_hz`: each sample covers one sampling period from its time, clipped to the "
        "window; the lowest over the job's GPUs. A sampler thread starved of CPU leaves holes. "
        "Invalid under `valid_min_sample_coverage` (0.9). Null without GPUs.")
    throttle_s: float | None = col(
        "validity", F, "s", "Time in the window during which any of the job's GPUs had one of "
        "`valid_throttle_reasons` active (by default the slowdowns that depend on cooling or "
        "power delivery: `hw_slowdown`, `sw_thermal_slowdown`, `hw_thermal_slowdown`, "
        "`hw_power_brake_slowdown`), from the samples' `clocks_event_reasons`, each held until "
        "the GPU's next sample. Invalid over `valid_max_throttle_share` (5%) of the window. "
        "Null when the driver does not report clock event reasons.")
    throttle_reasons: list[str] | None = col(
        "validity", LS, "-", "Every clock event reason seen in any sample of the window, "
        "sorted (`sw_power_cap`, `sync_boost`, `gpu_idle`, ...), whether it counts as "
        "throttling or not.")
    power_source: str | None = col(
        "validity", S, "-", "Where the row's sampled power (`samples.power_w`, "
        "`gpu_energy_sampled_j`) came from: `instant` (`NVML_FI_DEV_POWER_INSTANT`), "
        "`average` (`nvmlDeviceGetPowerUsage`, a 1 s running mean on Hopper, which smooths "
        "short peaks and lags the window's edges), `mixed`, or `counter` when no power was "
        "sampled (the row's power figures are then energy counter differences over time).")
    boundary: str | None = col(
        "energy", S, "-", "What `energy_j` covers (`measurement.boundary`): `gpu`, the job's "
        "GPUs' energy counters; `node`, those plus the host's CPU packages and DRAM (RAPL, the "
        "whole socket). CPU jobs' RAPL energy is `node`. The `stats` view groups by it, so rows "
        "of different boundaries never mix.")
    energy_facility_j_estimate: float | None = col(
        "energy", F, "J", "**Estimate**: `energy_j × pue` on boundary node when "
        "`measurement.pue` is set: the facility's share (cooling, power conversion) by a "
        "power usage effectiveness factor the user gives. Null otherwise.")
    pue: float | None = col(
        "config", F, "ratio", "`measurement.pue`, the power usage effectiveness factor used "
        "for `energy_facility_j_estimate`. Null when not given.")
    grid_intensity_source: str | None = col(
        "energy", S, "-", "Where `grid_intensity_g_per_kwh` came from: `given: ...` (the grid "
        "file's number), `codecarbon <version> global energy mix: <ISO3> (<country>, <year>, "
        "...)` for `measurement.country`, `codecarbon <version> cloud regions: <provider> "
        "<region> ...` for `measurement.cloud`, or `unavailable: ...` with why (no data for "
        "that country or region, codecarbon missing in the worker). Nothing is guessed.")
    cpu_energy_j_estimate: float | None = col(
        "energy", F, "J", "**Estimate**, on boundary node without readable RAPL only: "
        "codecarbon's CPU model over the window (the package's TDP from its registry, or its "
        "generic per-thread constant, scaled by the machine's CPU load). Never added to "
        "`energy_j` or `cpu_energy_j` (which stay null without RAPL).")
    cpu_estimate_method: str | None = col(
        "energy", S, "-", "The CPU model behind `cpu_energy_j_estimate`, or why there is none.")
    idle_baseline_source: str | None = col(
        "idle", S, "-", "`measurement.idle_baseline` the row used: `per_job` (measured before "
        "this job), `per_worker` (measured once after the model loaded on this worker, then "
        "reused), `cached` (reused while younger than `idle_max_age_s` and while a "
        "`idle_check_s` check before the job agrees within `idle_check_tolerance`).")
    idle_baseline_measured: bool | None = col(
        "idle", B, "-", "True when the baseline was measured for this job, false when reused.")
    idle_baseline_reason: str | None = col(
        "idle", S, "-", "Why it was measured: `per_job`, `first` (the worker's first), "
        "`model_loaded` (a new model since), `age` (older than `idle_max_age_s`), `check` (the "
        "check disagreed). Null when reused.")
    idle_baseline_age_s: float | None = col(
        "idle", F, "s", "Time since the baseline was measured, when this job used it.")
    idle_check_power_w: float | None = col(
        "idle", F, "W", "`cached`: the check's idle power, summed over the job's GPUs, from the "
        "counter between two of its updates (so 1 s is not off by a 100 ms period). Null "
        "when no check ran.")
    idle_check_diff: float | None = col(
        "idle", F, "ratio", "The absolute difference between `idle_check_power_w` and the "
        "cached baseline's GPU power, over the latter.")
    idle_host_power_w: float | None = col(
        "idle", F, "W", "RAPL package + DRAM power over the idle period. It is part of "
        "`idle_power_w` on boundary node. Null without RAPL.")
    warmup_shared: bool | None = col(
        "warmup", B, "-", "True when some of the workload's batches had already run on this "
        "worker since its model loaded, with the same generation settings, and were left out "
        "of this job's pass over every batch (`measurement.warmup_share`). The convergence "
        "on the first batch ran as always.")
    warmup_batches_reused: int | None = col(
        "warmup", I32, "batches", "Batches left out of the warmup pass because they were "
        "already warm.")
    prefill_energy_j: float | None = col(
        "energy", F, "J", "`measurement.phases`: the energy of prefilling one pass of the "
        "workload (every prompt once, in the same batches, with 1 output token), from a window "
        "of prefill-only passes measured before the full window: its `energy_j / repeats`.")
    prefill_energy_per_input_token_j: float | None = col(
        "energy", F, "J/token", "`prefill_energy_j / input tokens of one pass`.")
    decode_energy_per_token_j: float | None = col(
        "energy", F, "J/token", "`measurement.phases`: `(energy_j / repeats - "
        "prefill_energy_j) / (output tokens - requests, of one pass)`: the full workload's "
        "energy per pass less its prefill, over the tokens after each request's first. Null "
        "when every request made one token.")
    prefill_window_s: float | None = col(
        "energy", F, "s", "Length of the prefill-only window.")
    prefill_repeats: int | None = col(
        "energy", I32, "passes", "Prefill-only passes in that window (repeated to "
        "`min_window_s`, like the full one).")


# samples columns (appended to llem.store.columns.SAMPLES)
VALIDITY_SAMPLES = (
    Column("power_source", S, "-", "Which reading `power_w` is: `instant` "
           "(`NVML_FI_DEV_POWER_INSTANT`) or `average` (`nvmlDeviceGetPowerUsage`, a 1 s "
           "running mean on Hopper)."),
    Column("clocks_event_reasons", LS, "-", "NVML clock event reasons active at the sample "
           "(`nvmlDeviceGetCurrentClocksEventReasons`, formerly ...ThrottleReasons), by name: "
           "`gpu_idle`, `applications_clocks_setting`, `sw_power_cap`, `hw_slowdown`, "
           "`sync_boost`, `sw_thermal_slowdown`, `hw_thermal_slowdown`, "
           "`hw_power_brake_slowdown`, `display_clock_setting`, `board_limit`, `reliability`. "
           "Empty: none; null: the driver did not say."),
)

# The stats view's rule (llem.store.query): a row counts when its energy is not judged
# invalid, and no neighbour (llem.scheduler.neighbours, recorded by the driver after the
# worker built the row) shared its GPUs, or, on boundary node, its node (RAPL measures the
# whole socket, so a neighbour's CPU work lands in this row's energy).
NEIGHBOUR_GPUS = ("flatten(list_transform(coalesce(neighbor_gpus, []::VARCHAR[]), "
                  "lambda g: string_split(g, ',')))")
VALID_SQL = (
    "(energy_valid IS NOT FALSE AND NOT (len(coalesce(neighbor_jobs, []::VARCHAR[])) > 0 "
    "AND (boundary IS NOT DISTINCT FROM 'node' OR "
    f"list_has_any(coalesce(gpu_uuids, []::VARCHAR[]), {NEIGHBOUR_GPUS}))))")
# what the rule reads, with its type for stores whose files lack it
VALID_COLUMNS = {"energy_valid": "BOOLEAN", "boundary": "VARCHAR",
                 "neighbor_jobs": "VARCHAR[]", "neighbor_gpus": "VARCHAR[]",
                 "gpu_uuids": "VARCHAR[]"}


def with_valid(table: str, have: set[str]) -> str:
    """SELECT over `table` with a boolean `_valid` (VALID_SQL), the columns it reads added as
    nulls where no file of the store has them (stores written before)."""
    missing = ", ".join(f"NULL::{t} AS {c}" for c, t in VALID_COLUMNS.items() if c not in have)
    inner = f"SELECT *, {missing} FROM {table}" if missing else f"SELECT * FROM {table}"
    return f"SELECT *, {VALID_SQL} AS _valid FROM ({inner})"


# What the rule leaves out of the readers' figures (`llem compare`, `llem report`, the table
# `llem run` prints): only energy figures. Throughput and latency of a row whose energy is
# invalid were still measured as usual (a short window or a thermal slowdown does not make
# its token count or timings wrong), so they stay in; --include-invalid keeps every figure.
ENERGY_WORDS = ("energy", "power", "co2")


def is_energy_metric(column: str) -> bool:
    """Whether a runs column is an energy figure (energy, power, CO2): left out of the
    readers' means where the row's energy is invalid (VALID_SQL)."""
    return any(w in column for w in ENERGY_WORDS)
