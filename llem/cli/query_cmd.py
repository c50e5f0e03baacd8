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

    from llem.store.query import stream_sql

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
        schema, batches = stream_sql(st, sql)
        # SQL reads any file DuckDB can (read_text('/proc/self/environ')): what it prints
        # is masked like every other text llem shows
        emit([redact(c) for c in schema.names],
             ([_masked(v) for v in row] for batch in batches for row in _rows(batch)), fmt)
    except duckdb.Error as exc:
        raise UserError(f"query failed: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise UserError(f"cannot read store {st.uri}: {str(exc).splitlines()[0]}") from None


def _rows(batch: Any) -> Iterator[tuple[Any, ...]]:
    """A record batch's rows by position: two columns of one name (a self-join's
    a.tokens_per_s and b.tokens_per_s) are two values, not the second one twice."""
    return zip(*(column.to_pylist() for column in batch.columns))


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
            t.add_column(c)
        shown = 0
        for r in rows:
            if shown == MAX_TABLE_ROWS:
                click.echo(f"the first {MAX_TABLE_ROWS:,} rows are shown, the rest not read: "
                           "--format csv or json prints them all (or add LIMIT or WHERE)",
                           err=True)
                break
            t.add_row(*(_cell(v) for v in r))
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
