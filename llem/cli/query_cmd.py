"""`llem query` and `llem results`: read the store with DuckDB."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from llem.cli.query_values import cell, escaped, masked
from llem.cli.term import console, to_second
from llem.credentials import redact
from llem.errors import UserError
from llem.store.printable import printable

FORMATS = click.Choice(["table", "csv", "json"])


def default_store() -> str:
    """The store of the grid file in the current directory when that is unambiguous (every
    grid file here names the same store), else ./results."""
    stores = {store for p in sorted(Path.cwd().glob("*.y*ml")) if (store := _grid_store(p))}
    return stores.pop() if len(stores) == 1 else "results"


def _grid_store(path: Path) -> str | None:
    """A grid file's `store` (default results); None for a YAML file that is not a grid."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(data, dict) or "name" not in data or \
            not {"models", "backends", "grid", "sweep"} & set(data):
        return None
    store = data.get("store", "results")
    return store if isinstance(store, str) else None


STORE_HELP = ("Results store: a path or a pyarrow filesystem URI (s3://, gs://, hdfs://, "
              "file://). Default: the store of the grid file in this directory, else ./results.")


def open_store(path: str | None, warnings: bool = True, given_as: str = "--store") -> Any:
    """The Store at `path` (or the default), or one clear UserError: also where no store
    is there (a reader would show an empty table). warnings: print each file readers skip
    (damaged, cut short, not llem's) on stderr, one line each. given_as: how the command
    takes the store (--store, or a positional STORE: `compact FILE` said "pass --store")."""
    from llem.store.store import Store, StoreError

    where = path or default_store()
    try:
        st = Store(where, on_warning=_warn if warnings else None)
    except StoreError:
        raise
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for bad URIs
        raise UserError(f"cannot open store '{where}': {str(exc).splitlines()[0]}") from None
    if not st.is_store():
        what = "a file, not a store's folder" if Path(where).is_file() else \
            "no runs, requests, samples or sessions folder there"
        wrote = "the folder (or URI) `llem run` wrote to"
        fix = f"pass --store with {wrote}" if given_as == "--store" else \
            f"give {wrote} as {given_as}"
        raise UserError(f"no store at {st.uri}{_how_found(path, where)}: {what}; {fix}")
    return st


def _how_found(path: str | None, where: str) -> str:
    if path is not None:
        return ""
    grids = [p.name for p in sorted(Path.cwd().glob("*.y*ml")) if _grid_store(p)]
    if where != "results" or len(grids) == 1:
        return f" (the store of {grids[0]} here)" if grids else ""
    why = "the grid files here name different stores" if grids else \
        f"no grid file in {Path.cwd()} names one"
    return f" (the default ./results: {why})"


def _warn(message: str) -> None:
    click.echo(f"warning: {redact(message)}", err=True)


@click.command()
@click.argument("sql")
@click.option("--store", help=STORE_HELP)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def query(sql: str, store: str | None, fmt: str) -> None:
    """Run one SQL statement that reads (text, or the path of a .sql file) over the store
    with DuckDB.

    Views: runs (one row per job x cycle), requests (one per request), samples (the
    power/thermal timeline), stats (per configuration across cycles: mean, std, 95% CI, CV).
    Columns and units: docs/schema.md. It only reads: one SELECT, WITH, FROM, VALUES, PIVOT,
    DESCRIBE, SHOW, SUMMARIZE, or EXPLAIN [ANALYZE] of one of those (several statements, SET,
    PRAGMA, COPY, INSTALL, ... are refused; `llem export` writes files), and loads no DuckDB
    extension. Dates, times and intervals print as DuckDB writes them ('infinity' and years
    past 9999 too), a BLOB with \\xNN escapes; credentials are masked.

    \b
      llem query "SELECT backend, batch_size, avg(energy_per_token_j) FROM runs GROUP BY ALL"
      llem query pareto.sql --store s3://bucket/llem --format csv
    """
    import duckdb

    from llem.cli.query_sql import failure, reads_only, sql_text
    from llem.store.query import stream_sql

    sql = sql_text(sql)
    if not sql.strip():  # printed '0 rows' as if it had asked something
        raise UserError("the SQL is empty: give a query, e.g. llem query \"SELECT * FROM runs\"")
    reads_only(sql)
    st = open_store(store)
    try:
        schema, batches = stream_sql(st, sql, shape=printable)
        # SQL reads any file DuckDB can (read_text('/proc/self/environ')): what it prints
        # is masked like every other text llem shows
        emit([redact(c) for c in schema.names],
             ([masked(v) for v in row] for batch in batches for row in _rows(batch)), fmt)
    except duckdb.Error as exc:
        raise UserError(f"query failed: {failure(exc)}") from None
    except OSError as exc:
        raise UserError(f"cannot read store {st.uri}: {str(exc).splitlines()[0]}") from None


def _rows(batch: Any) -> Iterator[tuple[Any, ...]]:
    """A record batch's rows by position: two columns of one name (a self-join's
    a.tokens_per_s and b.tokens_per_s) are two values, not the second one twice."""
    return zip(*(column.to_pylist() for column in batch.columns))


@click.command()
@click.option("--store", help=STORE_HELP)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def results(store: str | None, fmt: str) -> None:
    """List the campaigns in the store with their counts of ok and failed jobs."""
    import duckdb

    from llem.store.query import campaign_counts

    st = open_store(store)
    try:
        counts = campaign_counts(st)
    except duckdb.Error as exc:
        raise UserError(f"cannot read store {st.uri}: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise UserError(f"cannot read store {st.uri}: {str(exc).splitlines()[0]}") from None
    columns = ["campaign", "ok", "failed", "configs", "energy_j", "first", "last"]
    emit(columns, ([row[c] for c in columns] for row in map(to_second, counts)), fmt)


MAX_TABLE_ROWS = 1000  # a table is for reading: more rows took rich ~0.3 s per thousand


def emit(columns: list[str], rows: Iterable[Sequence[Any]], fmt: str) -> None:
    """Print rows (values in the order of columns) as a rich table, CSV or JSON (to stdout),
    as they come: CSV holds one row at a time, JSON a thousand, a table at most
    MAX_TABLE_ROWS (the rest is not read; stderr says so and how to get them all)."""
    if fmt == "json":  # NaN and Infinity are no JSON: jq and JSON.parse refused the output
        names, sep, it = _unique(columns), "[", iter(rows)
        while chunk := [_finite(dict(zip(names, r))) for r in islice(it, 1000)]:
            # json.dumps(rows, indent=1), a thousand rows at a time: "[\n {...},\n {...}\n]"
            text = json.dumps(chunk, default=str, indent=1, allow_nan=False)
            sys.stdout.write(sep + text[1:-2])
            sep = ","
        sys.stdout.write("[]\n" if sep == "[" else "\n]\n")
    elif fmt == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(columns)
        w.writerows(rows)
    else:
        t = Table(show_lines=False)
        for c in columns:
            t.add_column(Text(escaped(c)))
        shown = 0
        for r in rows:
            if shown == MAX_TABLE_ROWS:
                click.echo(f"the first {MAX_TABLE_ROWS:,} rows are shown, the rest not read: "
                           "--format csv or json prints them all (or add LIMIT or WHERE)",
                           err=True)
                break
            t.add_row(*(cell(v) for v in r))
            shown += 1
        console().print(t if shown else "0 rows")  # the terminal's width; plain off one


def _unique(columns: list[str]) -> list[str]:
    """JSON keys for columns: a name met again gets _2, _3, ... (a JSON object keeps one
    value per key: the second a.x of a self-join overwrote the first)."""
    out: list[str] = []
    for c in columns:
        name, n = c, 1
        while name in out:
            n += 1
            name = f"{c}_{n}"
        out.append(name)
    return out


def _finite(v: Any) -> Any:
    """v with NaN and infinite floats as null, in lists and maps too (a query's 0.0 / 0)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v
