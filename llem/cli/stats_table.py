"""The table `llem run` prints at its end: each configuration's spread across its cycles,
read back from the store's `stats` view (so it shows exactly what a query would)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from llem.store import Store

SHOWN = (("tokens_per_s", "tok/s", ".1f"), ("energy_per_token_j", "J/token", ".4g"),
         ("latency_p50_s", "p50 latency (s)", ".4g"))


def _cell(row: dict[str, Any], metric: str, fmt: str) -> str:
    m, ci, cv = (row.get(f"{metric}_{k}") for k in ("mean", "ci95", "cv"))
    if m is None:
        return "n/a"
    text = format(m, fmt)
    if ci is not None:
        text += f" ± {format(ci, fmt)}"
    if cv is not None:
        text += f" (CV {cv:.1%})"
    return text


def print_cycle_stats(console: Console, store: Store, campaign: str, limit: int = 20) -> None:
    """Mean ± 95% CI (t) and CV per configuration with 2+ cycles; nothing when none has."""
    from llem.query import run_sql

    safe = campaign.replace("'", "''")
    rows = run_sql(store, f"SELECT * FROM stats WHERE campaign = '{safe}' AND cycles >= 2 "
                          "ORDER BY backend, model, batch_size, max_new_tokens").to_pylist()
    if not rows:
        return
    t = Table(title="across cycles: mean ± 95% CI (t), CV")
    for col in ("backend", "model", "batch", "new tokens", "cycles", *(s[1] for s in SHOWN)):
        t.add_column(col, justify="left" if col in ("backend", "model") else "right")
    for r in rows[:limit]:
        t.add_row(str(r["backend"]), str(r["model"])[-40:], str(r["batch_size"]),
                  str(r["max_new_tokens"]), str(r["cycles"]),
                  *(_cell(r, m, f) for m, _, f in SHOWN))
    console.print(t)
    if len(rows) > limit:
        console.print(f"({len(rows) - limit} more: llem query \"SELECT * FROM stats\")")
