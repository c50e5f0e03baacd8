"""The table `llem run` prints at its end: each configuration's spread across its cycles,
read back from the store's `stats` view (so it shows exactly what a query would)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from llem.store import Store

SHOWN = (("tokens_per_s", "tok/s", ".1f"), ("energy_per_token_j", "J/token", ".4g"))


def _config(r: dict[str, Any]) -> str:
    model = str(r["model"]).rstrip("/").rsplit("/", 1)[-1]
    return f"{r['backend']} {model} b{r['batch_size']} n{r['max_new_tokens']}"


def print_cycle_stats(console: Console, store: Store, campaign: str, limit: int = 20) -> None:
    """Mean, 95% CI half-width (t) and CV per configuration with 2+ cycles; a metric nobody
    measured (energy on a CPU-only machine) is left out; nothing when no config repeats."""
    try:
        from llem.query import run_sql
    except ImportError as exc:  # a worker-only install (e.g. a GPU node without duckdb)
        console.print(f"(cycle statistics not shown: {exc}; `llem query` shows them where "
                      "duckdb is installed)")
        return
    safe = campaign.replace("'", "''")
    rows = run_sql(store, f"SELECT * FROM stats WHERE campaign = '{safe}' AND cycles >= 2 "
                          "ORDER BY backend, model, batch_size, max_new_tokens").to_pylist()
    if not rows:
        return
    shown = [s for s in SHOWN if any(r.get(f"{s[0]}_mean") is not None for r in rows)]
    t = Table(title="across cycles: mean, ±95% CI (t), CV")
    t.add_column("configuration")
    t.add_column("cycles", justify="right")
    for _, label, _ in shown:
        for col in (label, "±95%", "CV"):
            t.add_column(col, justify="right")
    for r in rows[:limit]:
        cells = [_config(r), str(r["cycles"])]
        for metric, _, fmt in shown:
            m, ci, cv = (r.get(f"{metric}_{k}") for k in ("mean", "ci95", "cv"))
            cells += [format(m, fmt) if m is not None else "n/a",
                      format(ci, fmt) if ci is not None else "",
                      f"{cv:.1%}" if cv is not None else ""]
        t.add_row(*cells)
    console.print(t)
    if len(rows) > limit:
        console.print(f"({len(rows) - limit} more: llem query \"SELECT * FROM stats\")")
