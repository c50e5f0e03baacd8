"""What `llem run` prints at its end: the summary line (what this session did), then the table
people read (per configuration: throughput, energy per token and latency, mean ± 95% CI
over the cycles), then where the results are and the commands that read them next.

The table is read back from the store (so it shows what a query would); its rows are the
configurations of the grid just run, named by the parameters that vary between them. As in
the `stats` view, J/token leaves out the cycles whose energy is invalid; the cycles cell
counts them.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from llem.cli.query_cmd import default_store
from llem.cli.term import Out, plural
from llem.config.axes import dotted
from llem.config.grid import count_points, load_groups
from llem.config.job import job_id_of
from llem.config.loaded import Loaded
from llem.credentials import mask_shapes, redact
from llem.report.params import Points
from llem.scheduler.state import Summary
from llem.store.store import Store
from llem.store.validity_fields import is_energy_metric, with_valid

ROWS_SHOWN = 20
GRID_IDS_MAX = 20_000  # points read to know the grid's configurations; past that, all of them
# (runs column, header, kind): kind picks the unit and the number format. A metric no row
# measured is left out (TTFT without streaming); J/token's reason is said below the table.
METRICS = (("tokens_per_s", "tok/s", "rate"), ("energy_per_token_j", "J/token", "energy"),
           ("latency_p50_s", "latency p50", "time"), ("latency_p99_s", "latency p99", "time"),
           ("ttft_p50_s", "TTFT p50", "time"), ("ttft_p99_s", "TTFT p99", "time"))


def summary_line(s: Summary) -> str:
    """One line: the session's jobs and what became of them, loads, tokens, energy, time."""
    counts = [f"{s.ok} ok", f"{s.failed} failed"]
    if s.not_run or s.interrupted:
        counts.append(f"{s.not_run} not run" + (" (interrupted)" if s.interrupted else ""))
    if s.skipped:
        counts.append(f"skipped {plural(s.skipped, 'job')} already in the store (status ok)")
    if s.retried + s.rescheduled:
        counts.append(f"{s.retried + s.rescheduled} retried")
    energy = f"{s.energy_j:.1f} J" if s.energy_j else "energy n/a"
    return (f"campaign summary: {plural(s.total, 'job')}: {', '.join(counts)}; "
            f"{plural(s.model_loads, 'model load')} on {plural(s.workers, 'worker')}; "
            f"{plural(s.output_tokens, 'token')}; {energy}; {s.elapsed_s:.1f} s")


def print_end(err: Out, out: Out, s: Summary, loaded: Loaded, store: str, quiet: bool,
              tracebacks: list[str] | None) -> int:
    """Everything after the run, and its exit status: the summary line, the failures and
    an interruption on stderr; the results table, where they are and what to run next on
    stdout (not with quiet). tracebacks: the failed jobs' (--verbose), else None."""
    err.print(escape(summary_line(s)))
    if s.failed:
        for e in s.errors[:5]:
            err.print(f"[red]failed[/] {escape(e)}")
        if len(s.errors) > 5:
            err.print(f"... and {len(s.errors) - 5} more: llem query \"SELECT job_id, cycle, "
                      f"error FROM runs WHERE status = 'failed'\"{store_option(store)}",
                      markup=False)
        for tb in tracebacks or []:
            err.print(tb, markup=False)
        if tracebacks is None:
            err.print("(run again with --verbose for the failed jobs' tracebacks)")
    if not quiet and (s.ok or s.failed or s.skipped):
        print_results(out, Store(store), loaded.campaign.name, grid_job_ids(loaded),
                      store_option(store))
    if s.interrupted:
        err.print(f"interrupted: workers stopped; {plural(s.ok + s.failed, 'result')} stored "
                  f"in this session, {s.not_run} not run. Run the same command again to "
                  "resume.")
        return 130
    return 1 if s.failed and not s.ok else 0


def store_option(store: str) -> str:
    """' --store STORE' for the commands to run next, unless they find it by default."""
    here = default_store()
    if "://" not in store and "://" not in here and \
            Path(store).expanduser().resolve() == Path(here).resolve():
        return ""
    return "" if store == here else f" --store {shlex.quote(mask_shapes(redact(store)))}"


def grid_job_ids(loaded: Loaded) -> set[str] | None:
    """The configurations (job ids) of the grid; None for a grid too big to list quickly."""
    if count_points(loaded) > GRID_IDS_MAX:
        return None
    return {job_id_of(p) for g in load_groups(loaded) for p in g.points()}


def short_model(model: Any) -> str:
    return str(model or "").rstrip("/").rsplit("/", 1)[-1]


def sort_key(point_json: str | None) -> tuple[Any, ...]:
    """Configurations in the order of their settings, numbers as numbers (4 before 16)."""
    f = dotted(json.loads(point_json)) if point_json else {}
    return tuple((0, v, "") if isinstance(v, int | float) and not isinstance(v, bool)
                 else (1, 0, json.dumps(v)) for _, v in sorted(f.items()))


# why an ok row has no J/token, first found first: no energy reading; a server level's window
# that measured nothing, or a server that sent no token counts (columns a store may lack)
WHY_MISSING = ("energy_unavailable", "window_unavailable", "tokens_unavailable")


def config_rows(store: Store, campaign: str) -> list[dict[str, Any]]:
    """Per configuration of the campaign: ok and failed cycles, ok cycles whose energy is
    invalid (invalid: left out of J/token, as the `stats` view does), the reasons its ok
    cycles give for a missing J/token (why_missing: WHY_MISSING), and for each metric the
    mean and the Student-t 95% CI half-width over its ok cycles (None below 2)."""
    from llem.store.query import run_sql

    ok = "FILTER (status = 'ok')"
    valid = "FILTER (status = 'ok' AND _valid)"
    metrics = ",\n  ".join(
        f"avg({m}) {f} AS {m}_mean, llem_t95((count({m}) {f})::BIGINT - 1) * "
        f"stddev_samp({m}) {f} / sqrt(count({m}) {f}) AS {m}_ci95"
        for m, _, _ in METRICS for f in [valid if is_energy_metric(m) else ok])
    safe = campaign.replace("'", "''")
    have = set(run_sql(store, "DESCRIBE runs").column("column_name").to_pylist())
    why = f"coalesce({', '.join([c for c in WHY_MISSING if c in have] + ['NULL::VARCHAR'])})"
    return run_sql(store, f"""SELECT job_id, any_value(point_json) AS point_json,
  count(*) {ok} AS ok, count(*) FILTER (status <> 'ok') AS failed,
  count(*) FILTER (status = 'ok' AND NOT _valid) AS invalid,
  list(DISTINCT {why}) FILTER (status = 'ok' AND {why} IS NOT NULL) AS why_missing,
  {metrics}
FROM ({with_valid("runs", have)}) WHERE campaign = '{safe}' GROUP BY job_id""").to_pylist()


def print_results(out: Out, store: Store, campaign: str, job_ids: set[str] | None,
                  store_arg: str) -> None:
    """The table, the reasons a metric is missing (once), where the results are, and what
    to run next. store_arg: the --store option the next commands need ('' for none)."""
    try:
        rows = config_rows(store, campaign)
    except ImportError as exc:  # a worker-only install (a GPU node without duckdb)
        out.print(f"(results table not shown: {exc}; `llem query` shows them where duckdb "
                  "is installed)")
        rows = []
    if job_ids is not None:
        rows = [r for r in rows if r["job_id"] in job_ids]
    rows.sort(key=lambda r: (sort_key(r["point_json"]), r["job_id"]))
    if rows:
        out.print(results_table(campaign, rows[:ROWS_SHOWN], rows))
        if len(rows) > ROWS_SHOWN:
            out.print(f"({len(rows) - ROWS_SHOWN} more configurations: llem compare "
                      f"{campaign}{store_arg})")
        for why in missing_reasons(rows):
            out.print(escape(why))
        invalid = sum(r.get("invalid") or 0 for r in rows)
        if invalid:
            out.print(escape(f"J/token leaves out {plural(invalid, 'cycle')} whose energy is "
                             "invalid (energy_valid false, or a neighbour on their GPUs; "
                             "energy_invalid_reasons says why); `stats_all` keeps them"))
    query = f"SELECT * FROM stats WHERE campaign = '{campaign}'"  # names: [A-Za-z0-9_.-]
    for line in (f"results: {store.uri} (campaign {campaign})", "next:",
                 f"  llem report {campaign}{store_arg} -o {campaign}.html   one HTML page "
                 "with plots",
                 f"  llem compare {campaign}{store_arg}   configurations side by side",
                 f'  llem query "{query}"{store_arg}'):
        out.print(escape(line))


def results_table(campaign: str, shown: list[dict[str, Any]],
                  every: list[dict[str, Any]]) -> Table:
    pts = Points.of((r["job_id"], r["point_json"]) for r in every)  # what varies, and names
    keys = [p.path for p in pts.params] or ["backend", "model"]
    names = {p.path: p.name for p in pts.params} or {k: k for k in keys}
    metrics = [(m, h, kind) for m, h, kind in METRICS  # what no row measured is left out
               if any(r[f"{m}_mean"] is not None for r in every)]
    t = Table(title=f"{campaign}: {_spread({r['ok'] for r in every if r['ok']})}")
    for k in keys:
        t.add_column(names[k], overflow="fold")
    t.add_column("cycles", justify="right")
    units = {m: _unit(kind, [r[f"{m}_mean"] for r in every]) for m, _, kind in metrics}
    for m, header, _ in metrics:
        unit = units[m][0]
        t.add_column(f"{header} ({unit})" if unit else header, justify="right")
    for r in shown:
        f = pts.flat.get(r["job_id"], {})
        cells = [escape(short_model(f.get(k)) if k == "model" else _value(f.get(k)))
                 for k in keys]
        cells.append(str(r["ok"]) + (f" (+{r['failed']} failed)" if r["failed"] else "")
                     + (f" ({r['invalid']} energy invalid)" if r.get("invalid") else ""))
        for m, _, _ in metrics:
            cells.append(_cell(r[f"{m}_mean"], r[f"{m}_ci95"], *units[m][1:]))
        t.add_row(*cells)
    return t


def _spread(cycles: set[int]) -> str:
    """The table's title: what its cells are."""
    if not cycles:
        return "no configuration has an ok result"
    if max(cycles) < 2:
        return "one cycle per configuration (no CI)"
    if len(cycles) == 1:
        return f"mean ± 95% CI over {cycles.pop()} cycles, per configuration"
    return "mean ± 95% CI over each configuration's cycles (one cycle: its value)"


def missing_reasons(rows: list[dict[str, Any]]) -> list[str]:
    """Why J/token is missing: each reason once, below the table."""
    if all(r["energy_per_token_j_mean"] is not None for r in rows
           if r["ok"] > (r.get("invalid") or 0)):  # all invalid: said below the table
        return []
    reasons = sorted({why for r in rows for why in (r["why_missing"] or [])})
    if not reasons:
        return ["J/token not measured (the rows give no reason)"]
    return [f"J/token not measured: {why}" for why in reasons]


def _value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, dict | list):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def _unit(kind: str, values: list[float | None]) -> tuple[str, float, int]:
    """A column's unit, scale and decimals: times in ms when every mean is below a second;
    decimals give the column's smallest mean 3 significant digits."""
    known = [abs(v) for v in values if v is not None]
    scale = 1e3 if kind == "time" and known and max(known) < 1 else 1.0
    unit = ("ms" if scale == 1e3 else "s") if kind == "time" else ""
    small = min((v * scale for v in known if v), default=1.0)
    return unit, scale, min(6, max(0, 2 - math.floor(math.log10(small))))


def _cell(mean: float | None, ci: float | None, scale: float, decimals: int) -> str:
    """'2944 ± 1167', or the single value of one cycle; '-' when not measured."""
    if mean is None:
        return "-"
    text = f"{mean * scale:.{decimals}f}"
    return text if ci is None else f"{text} ± {ci * scale:.{decimals}f}"
