"""`llem query` and `llem results`: read the store with DuckDB."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from llem.errors import UserError

FORMATS = click.Choice(["table", "csv", "json"])


def default_store() -> str:
    """Where results go when neither the grid file nor --store says: ./results."""
    return "results"


def _store(path: str | None) -> Any:
    from llem.store import Store

    return Store(path or default_store())


@click.command()
@click.argument("sql")
@click.option("--store", help="Results store (path or URI). Default: ./results.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def query(sql: str, store: str | None, fmt: str) -> None:
    """Run SQL over the store. Views: runs, requests, samples, stats.

    SQL may also be a path to a .sql file.

    \b
      llem query "SELECT backend, batch_size, avg(energy_per_token_j) FROM runs GROUP BY ALL"
    """
    import duckdb

    from llem.query import run_sql

    if sql.endswith(".sql") and Path(sql).is_file():
        sql = Path(sql).read_text()
    try:
        table = run_sql(_store(store), sql)
    except duckdb.Error as exc:
        raise UserError(f"query failed: {str(exc).splitlines()[0]}") from None
    emit(table.to_pylist(), table.column_names, fmt)


@click.command()
@click.option("--store", help="Results store (path or URI). Default: ./results.")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def results(store: str | None, fmt: str) -> None:
    """List the campaigns in the store with their counts of ok and failed jobs."""
    from llem.query import campaign_counts

    rows = campaign_counts(_store(store))
    emit(rows, ["campaign", "ok", "failed", "configs", "energy_j", "first", "last"], fmt)


def emit(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> None:
    """Print rows as a rich table, CSV or JSON (to stdout)."""
    if fmt == "json":
        click.echo(json.dumps(rows, default=str, indent=1))
    elif fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    else:
        t = Table(show_lines=False)
        for c in columns:
            t.add_column(c)
        for r in rows:
            t.add_row(*(_cell(r.get(c)) for c in columns))
        Console(width=max(120, len(columns) * 14)).print(t)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
