"""The table `llem run` prints at its end: each configuration's spread across its cycles,
read back from the store's `stats` view (so it shows exactly what a query would)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from llem.config.axes import dotted
from llem.store.store import Store

SHOWN = (("tokens_per_s", "tok/s", ".1f"), ("energy_per_token_j", "J/token", ".4g"))



def labels(points: dict[str, str]) -> dict[str, str]:
    """job_id -> 'key=value ...' over the settings that differ between the campaign's
    configurations (the swept ones); the backend and model name always lead."""
    flat = {j: dotted(json.loads(p)) for j, p in points.items()}
    keys = sorted({k for f in flat.values() for k in f})
    varying = [k for k in keys if len({json.dumps(f.get(k)) for f in flat.values()}) > 1
               and k not in ("backend", "model")]
    out = {}
    for j, f in flat.items():
        model = str(f.get("model", "")).rstrip("/").rsplit("/", 1)[-1]
        parts = [f"{k.rsplit('.', 1)[-1]}={f.get(k)}" for k in varying]
        out[j] = " ".join([str(f.get("backend", "")), model, *parts])
    return out


def sort_key(point_json: str | None) -> tuple[Any, ...]:
    """Configurations in the order of their settings, numbers as numbers (4 before 16)."""
    f = dotted(json.loads(point_json)) if point_json else {}
    return tuple((0, v, "") if isinstance(v, int | float) and not isinstance(v, bool)
                 else (1, 0, json.dumps(v)) for _, v in sorted(f.items()))


def print_cycle_stats(console: Console, store: Store, campaign: str, limit: int = 20) -> None:
    """Mean, 95% CI half-width (t) and CV per configuration with 2+ cycles; a metric nobody
    measured (energy on a CPU-only machine) is left out; nothing when no config repeats."""
    try:
        from llem.store.query import run_sql
    except ImportError as exc:  # a worker-only install (e.g. a GPU node without duckdb)
        console.print(f"(cycle statistics not shown: {exc}; `llem query` shows them where "
                      "duckdb is installed)")
        return
    safe = campaign.replace("'", "''")
    rows = run_sql(store, f"SELECT * FROM stats WHERE campaign = '{safe}' AND cycles >= 2"
                   ).to_pylist()
    if not rows:
        return
    points = {r["job_id"]: r["p"] for r in run_sql(
        store, f"SELECT job_id, any_value(point_json) AS p FROM runs WHERE campaign = '{safe}' "
               "AND status = 'ok' GROUP BY job_id").to_pylist() if r["p"]}
    names = labels(points)
    rows.sort(key=lambda r: (sort_key(points.get(r["job_id"])), r["job_id"]))
    shown = [s for s in SHOWN if any(r.get(f"{s[0]}_mean") is not None for r in rows)]
    t = Table(title="across cycles: mean, ±95% CI (t), CV")
    t.add_column("configuration")
    t.add_column("cycles", justify="right")
    for _, label, _ in shown:
        for col in (label, "±95%", "CV"):
            t.add_column(col, justify="right")
    for r in rows[:limit]:
        cells = [names.get(r["job_id"], r["job_id"]), str(r["cycles"])]
        for metric, _, fmt in shown:
            m, ci, cv = (r.get(f"{metric}_{k}") for k in ("mean", "ci95", "cv"))
            cells += [format(m, fmt) if m is not None else "n/a",
                      format(ci, fmt) if ci is not None else "",
                      f"{cv:.1%}" if cv is not None else ""]
        t.add_row(*cells)
    console.print(t)
    if len(rows) > limit:
        console.print(f"({len(rows) - limit} more: llem query \"SELECT * FROM stats\")")
