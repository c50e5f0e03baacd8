"""Every stored column, declared once per table, and the column tables of docs/schema.md.

COLUMNS holds each table's Column records (name, Arrow type, unit, how it is measured), in
the table's order: runs from the RunRow record's fields (llem.store.run_row), requests,
samples and sessions listed here. The Parquet schemas (llem.store.schema.SCHEMAS) are made
from them, and so are the column tables of docs/schema.md, between its
`<!-- columns:NAME -->` and `<!-- /columns:NAME -->` markers (the prose around them is
written by hand). After changing a column, regenerate the page:

    python -m llem.store.columns            # rewrites docs/schema.md
    python -m llem.store.columns --check    # exit 1 when the page is out of date

tests/unit/store/test_schema_doc.py fails when the page and the declarations differ.
"""

# ruff: noqa: RUF001 (descriptions quote docs/schema.md, multiplication signs included)

from __future__ import annotations

import re
import sys
from pathlib import Path

from llem.store.column import I16, I32, I64, LF, RUN_GROUPS, TS, B, Column, F, S
from llem.store.run_row import RUN_COLUMNS
from llem.store.server_fields import SERVER_REQUESTS, SERVER_SAMPLES
from llem.store.validity_fields import VALIDITY_SAMPLES

# one row per request served in the window (llem.harness.result.request_row)
REQUESTS = (
    Column("schema_version", I16, "-", "Store schema version (see Schema version)."),
    Column("campaign", S, "-", "As in `runs`."),
    Column("job_id", S, "-", "As in `runs`. The key to join with it is `(campaign, job_id, "
           "cycle)`."),
    Column("cycle", I32, "-", "As in `runs`."),
    Column("session_id", S, "-", "As in `runs`: the session that measured it. The key to join "
           "a measurement is `(campaign, job_id, cycle, session_id)`; the `requests` view holds "
           "the rows of the measurement the `runs` view shows."),
    Column("request_index", I32, "-", "Position in serving order within the window, "
           "`0..num_requests-1`."),
    Column("repeat", I32, "-", "The pass over the prompt set this request belongs to "
           "(`0..repeats-1`)."),
    Column("batch_index", I32, "-", "The dispatch batch within its pass: one backend `generate` "
           "call serves one batch."),
    Column("input_tokens", I32, "tokens", "Prompt tokens after truncation or padding, without pad "
           "tokens (transformers counts the attention mask)."),
    Column("output_tokens", I32, "tokens", "Generated tokens up to and including the first EOS "
           "(tokens a batch produced after a row's EOS do not count)."),
    Column("arrival_s", F, "s", "When the request was scheduled to arrive. Offline: every request "
           "of a pass arrives at the pass's start. poisson/constant: the open-loop schedule, "
           "seeded."),
    Column("wait_s", F, "s", "`start - arrival`: time the arrived request waited in llem's "
           "dispatcher for a batch slot."),
    Column("start_s", F, "s", "When the backend started on it: just before the `generate` call "
           "that served its batch (shared by the batch). For vLLM and TensorRT-LLM streaming, "
           "just before the request was submitted."),
    Column("end_s", F, "s", "When the request's output reached the host. Streaming: its last "
           "token's arrival. Otherwise: when the batch's `generate` returned (for transformers "
           "after the device-to-host copy of the tokens)."),
    Column("latency_s", F, "s", "`end_s - start_s`."),
    Column("e2e_latency_s", F, "s", "`end_s - arrival_s`, which includes `wait_s`."),
    Column("ttft_s", F, "s", "Time to first token: the first token's host arrival minus "
           "`start_s`. Streaming only, null otherwise. For transformers, a token \"arrives\" "
           "when the streamer receives its decoding step's tokens on the host."),
    Column("itl_mean_s", F, "s", "Mean gap between this request's consecutive token arrivals. "
           "Streaming only."),
    Column("itl_p50_s", F, "s", "Median of this request's inter-token gaps. Streaming only."),
    Column("itl_p99_s", F, "s", "99th percentile of this request's inter-token gaps. Streaming "
           "only."),
    Column("tpot_s", F, "s", "Time per output token after the first: `(last token time - first "
           "token time) / (output_tokens - 1)`. Streaming only, and null for a single token."),
    Column("token_times_s", LF, "s", "Each generated token's host arrival time, since `t0`. "
           "Streaming only, null otherwise. It is never filled in by estimation."),
    Column("queue_s", F, "s", "The library's own stat: time in the engine's queue before it was "
           "scheduled (vLLM `RequestStateStats` queued to scheduled; TensorRT-LLM arrival to "
           "first scheduled). Null for transformers and noop."),
    Column("prefill_s", F, "s", "The library's own stat: scheduled to first token. Null for "
           "transformers and noop."),
    Column("decode_s", F, "s", "The library's own stat: first token to last token. Null for "
           "transformers and noop."),
) + SERVER_REQUESTS

# the GPU timeline of the window: one row per GPU per sample (llem.measure)
SAMPLES = (
    Column("schema_version", I16, "-", "Store schema version (see Schema version)."),
    Column("campaign", S, "-", "As in `runs`."),
    Column("job_id", S, "-", "As in `runs`."),
    Column("cycle", I32, "-", "As in `runs`."),
    Column("session_id", S, "-", "As in `runs`."),
    Column("t_s", F, "s", "Sample time since the window start (`perf_counter`)."),
    Column("gpu_uuid", S, "-", "NVML UUID of the GPU sampled."),
    Column("gpu_index", I32, "-", "NVML (physical, PCI bus order) index of the GPU. This is not "
           "the CUDA index inside the worker."),
    Column("power_w", F, "W", "`NVML_FI_DEV_POWER_INSTANT` (instantaneous) where the driver "
           "offers it, else `nvmlDeviceGetPowerUsage`. On Hopper the latter is a 1 s running "
           "mean. Both are mW / 1000."),
    Column("temperature_c", F, "°C", "`nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU)`: the GPU "
           "core sensor, whole degrees."),
    Column("sm_clock_mhz", F, "MHz", "`nvmlDeviceGetClockInfo(NVML_CLOCK_SM)`."),
    Column("gpu_util_pct", F, "%", "`nvmlDeviceGetUtilizationRates().gpu`: the share of the "
           "driver's last sample period in which at least one kernel ran. It is not SM "
           "occupancy."),
    Column("mem_used_mib", F, "MiB", "`nvmlDeviceGetMemoryInfo().used / 2^20`: the whole device, "
           "all processes."),
) + SERVER_SAMPLES + VALIDITY_SAMPLES
# one row per driver session (llem.store.store.Store.write_session)
SESSIONS = (
    Column("schema_version", I16, "-", "Store schema version (see Schema version)."),
    Column("campaign", S, "-", "Campaign the session ran."),
    Column("session_id", S, "-", "`<YYYYmmddTHHMMSS UTC>-<8 hex>`: when the session started, "
           "and 8 random hex digits. Also the file name, and the `session_id` of every row "
           "the session wrote."),
    Column("started_at", TS, "UTC time", "`finished_at - elapsed_s`."),
    Column("finished_at", TS, "UTC time", "Wall clock when the session's row was written."),
    Column("jobs", I64, "jobs", "Job × cycle pairs of the campaign that the session went through, "
           "including the skipped ones."),
    Column("ok", I64, "jobs", "Jobs stored with status ok in this session."),
    Column("failed", I64, "jobs", "Jobs stored with status failed in this session."),
    Column("skipped", I64, "jobs", "Jobs already done (status ok) in the store, so not run again."),
    Column("model_loads", I64, "loads", "Model loads across all the session's workers."),
    Column("workers", I64, "workers", "Worker actors (processes) started. A group split over two "
           "GPU sets counts twice; a worker reused for later load groups "
           "(`scheduling.reuse_workers`) counts once."),
    Column("retried", I64, "jobs", "Jobs sent again after their worker process died."),
    Column("rescheduled", I64, "jobs", "Jobs sent again after their Ray node was lost."),
    Column("output_tokens", I64, "tokens", "Sum of `runs.output_tokens` over the session's ok "
           "jobs."),
    Column("interrupted", B, "-", "True when Ctrl-C (KeyboardInterrupt) ended the session."),
    Column("exclusive_node", B, "-", "The `scheduling.exclusive_node` setting of the session."),
    Column("elapsed_s", F, "s", "Driver time from start to end (`perf_counter`)."),
    Column("energy_j", F, "J", "Sum of `runs.energy_j` over the session's ok jobs. This is "
           "measured window energy only, not load, gap, idle or warmup."),
    Column("rerun", B, "-", "True when the session measured the campaign again (`llem run "
           "--rerun`): every job ran, none was skipped as done."),
)

COLUMNS: dict[str, tuple[Column, ...]] = {
    "runs": RUN_COLUMNS, "requests": REQUESTS, "sessions": SESSIONS, "samples": SAMPLES}

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"  # in a checkout of llem
REGENERATE = "python -m llem.store.columns"
HEADER = ("| column | type | unit | how it is measured or derived |\n"
          "|---|---|---|---|")
_REGION = re.compile(r"(<!-- columns:([a-z:]+) -->\n)(.*?)(<!-- /columns:\2 -->)", re.S)


def regions() -> dict[str, tuple[Column, ...]]:
    """The page's generated tables by marker name: runs:<group> per runs section, then one
    per other table."""
    out = {f"runs:{g}": tuple(c for c in RUN_COLUMNS if c.group == g) for g in RUN_GROUPS}
    out.update({t: cols for t, cols in COLUMNS.items() if t != "runs"})
    return out


def markdown(cols: tuple[Column, ...]) -> str:
    """One markdown table: a row per column (`name` | type | unit | how)."""
    return "\n".join([HEADER, *(f"| `{c.name}` | {c.doc_type()} | {c.unit} | {c.how} |"
                                for c in cols)])


def render(text: str) -> str:
    """text (docs/schema.md) with every marked table made from the declarations; a table
    missing from the page, or a marker naming no table, is a ValueError."""
    want = regions()
    found = [m.group(2) for m in _REGION.finditer(text)]
    missing = [n for n in want if n not in found]
    unknown = [n for n in found if n not in want]
    twice = sorted({n for n in found if found.count(n) > 1})
    if missing or unknown or twice:
        raise ValueError(f"docs/schema.md column markers: missing {missing}, unknown "
                         f"{unknown}, twice {twice}")
    return _REGION.sub(lambda m: f"{m.group(1)}{markdown(want[m.group(2)])}\n{m.group(4)}",
                       text)


def main(argv: list[str]) -> int:
    """Rewrite the page's column tables (--check: only say whether they are out of date)."""
    check = "--check" in argv
    paths = [a for a in argv if not a.startswith("-")]
    path = Path(paths[0]) if paths else DOC
    text = path.read_text()
    new = render(text)
    if new == text:
        return 0
    if check:
        print(f"{path}: column tables out of date; run {REGENERATE}", file=sys.stderr)
        return 1
    path.write_text(new)
    print(f"{path}: column tables regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
