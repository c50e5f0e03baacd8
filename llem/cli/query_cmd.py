"""`llem query` and `llem results`: read the store with DuckDB."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from llem.cli.term import console, to_second
from llem.credentials import redact
from llem.errors import UserError

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


def open_store(path: str | None, warnings: bool = True) -> Any:
    """The Store at `path` (or the default), or one clear UserError: also where no store
    is there (a reader would show an empty table). warnings: print each file readers skip
    (damaged, cut short, not llem's) on stderr, one line each."""
    from llem.store.store import Store, StoreError

    where = path or default_store()
    try:
        st = Store(where, on_warning=_warn if warnings else None)
    except StoreError:
        raise
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for bad URIs
        raise UserError(f"cannot open store '{where}': {str(exc).splitlines()[0]}") from None
    if not st.is_store():
        raise UserError(f"no store at {st.uri}{_how_found(path, where)}: no runs, requests, "
                        "samples or sessions folder there; pass --store with the folder (or "
                        "URI) `llem run` wrote to")
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


MAX_SQL_BYTES = 1 << 20  # a .sql file read whole


@click.command()
@click.argument("sql")
@click.option("--store", help=STORE_HELP)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def query(sql: str, store: str | None, fmt: str) -> None:
    """Run SQL (text, or the path of a .sql file) over the store with DuckDB.

    Views: runs (one row per job x cycle), requests (one per request), samples (the
    power/thermal timeline), stats (per configuration across cycles: mean, std, 95% CI, CV).
    Columns and units: docs/schema.md. It only reads (`llem export` writes files).

    \b
      llem query "SELECT backend, batch_size, avg(energy_per_token_j) FROM runs GROUP BY ALL"
      llem query pareto.sql --store s3://bucket/llem --format csv
    """
    import duckdb

    from llem.store.query import run_sql

    if sql.strip().lower().endswith(".sql") and "\n" not in sql.strip():
        path = Path(sql.strip())
        if not path.is_file():  # (a FIFO named q.sql blocked for ever)
            what = "is not a regular file" if path.exists() else "not found"
            raise UserError(f"SQL file {path} {what}: pass SQL text or an existing .sql file")
        if path.stat().st_size > MAX_SQL_BYTES:
            raise UserError(f"SQL file {path} is over {MAX_SQL_BYTES} bytes: is it SQL?")
        data = path.read_bytes()
        try:  # replaced bytes changed a literal silently ('café' matched nothing)
            sql = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise UserError(f"SQL file {path}:{line} is not UTF-8 text (byte "
                            f"0x{data[exc.start]:02x}): save it as UTF-8") from None
    if not sql.strip():  # printed '0 rows' as if it had asked something
        raise UserError("the SQL is empty: give a query, e.g. llem query \"SELECT * FROM runs\"")
    reads_only(sql)
    st = open_store(store)
    try:
        table = run_sql(st, sql)
    except duckdb.Error as exc:
        raise UserError(f"query failed: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise UserError(f"cannot read store {st.uri}: {str(exc).splitlines()[0]}") from None
    # SQL reads any file DuckDB can (read_text('/proc/self/environ')): what it prints is
    # masked like every other text llem shows
    emit([{redact(k): _masked(v) for k, v in row.items()} for row in table.to_pylist()],
         [redact(c) for c in table.column_names], fmt)


# what `llem query` runs: statements that read (SELECT, WITH, FROM, VALUES, DESCRIBE,
# SUMMARIZE, SHOW, EXPLAIN, PIVOT) and settings of this one connection (SET, PRAGMA, CALL)
READS = frozenset({"SELECT", "EXPLAIN", "MULTI", "PRAGMA", "CALL", "SET", "VARIABLE_SET"})


def reads_only(sql: str) -> None:
    """Refuse, before anything runs, SQL that writes (COPY ... TO, CREATE, INSERT, ATTACH,
    EXPORT, INSTALL, ...): `COPY runs TO '<store>/runs/x.parquet'` put a file no writer made
    into the store. Files are written by `llem export`."""
    import duckdb

    try:
        kinds = [s.type.name for s in duckdb.extract_statements(sql)]
    except duckdb.Error as exc:
        raise UserError(f"query failed: {str(exc).splitlines()[0]}") from None
    for i, kind in enumerate(kinds, 1):
        if kind not in READS:
            which = f"statement {i} of {len(kinds)}" if len(kinds) > 1 else "the SQL"
            kind = "an INSTALL or LOAD" if kind == "LOAD" else \
                f"{'an' if kind[0] in 'AEIOU' else 'a'} {kind}"
            raise UserError(f"{which} is {kind} statement, and llem query only reads "
                            "(SELECT, WITH, DESCRIBE, SUMMARIZE, EXPLAIN, PIVOT): write "
                            "files with `llem export CAMPAIGN -o FILE`")


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    return value


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
    rows = [to_second(r) for r in counts]
    emit(rows, ["campaign", "ok", "failed", "configs", "energy_j", "first", "last"], fmt)


def emit(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> None:
    """Print rows as a rich table, CSV or JSON (to stdout)."""
    if fmt == "json":  # NaN and Infinity are no JSON: jq and JSON.parse refused the output
        click.echo(json.dumps(_finite(rows), default=str, indent=1, allow_nan=False))
    elif fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore",
                           lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    else:
        t = Table(show_lines=False)
        for c in columns:
            t.add_column(c)
        for r in rows:
            t.add_row(*(_cell(r.get(c)) for c in columns))
        console().print(t if rows else "0 rows")  # the terminal's width; plain off one


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _finite(v: Any) -> Any:
    """v with NaN and infinite floats as null, in lists and maps too (a query's 0.0 / 0)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v
