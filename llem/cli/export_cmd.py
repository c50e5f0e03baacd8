"""`llem export`: a campaign's rows as CSV, JSON Lines, JSON or Parquet, for tools outside
Python."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import click

from llem.cli.query_cmd import STORE_HELP, open_store
from llem.cli.suffixes import output_format
from llem.cli.term import check_output
from llem.errors import UserError
from llem.report.output import atomic_file, check_folder

OPTIONS = {"csv": "FORMAT csv, HEADER true", "jsonl": "FORMAT json",  # DuckDB COPY's, a format
           "json": "FORMAT json, ARRAY true", "parquet": "FORMAT parquet"}
FORMATS = tuple(OPTIONS)


@click.command()
@click.argument("campaign")
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              help="Default: what -o's name says (.csv, .jsonl, .json, .parquet), else csv.")
@click.option("--table", type=click.Choice(["runs", "requests", "samples", "stats"]),
              default="runs", show_default=True, help="Which view to export.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (written whole or not at all), named for its format (.csv, "
              ".jsonl or .ndjson, .json, .parquet). Default (or -): stdout.")
@click.option("--store", help=STORE_HELP)
def export(campaign: str, fmt: str | None, table: str, output: Path | None,
           store: str | None) -> None:
    """Write CAMPAIGN's rows of one view as CSV (with a header), JSON Lines, one JSON array
    or Parquet.

    Rows are ordered by job_id and cycle (and request_index / t_s). List columns (gpu_uuids)
    are written as DuckDB lists in CSV, JSON arrays in JSON; timestamps as ISO 8601 (in
    Parquet, as timestamps).

    \b
      llem export demo -o demo.csv
      llem export demo --table requests -o requests.parquet
      llem export demo --table requests --format jsonl | jq .latency_s
    """
    import duckdb

    from llem.report.campaign import Campaign

    if output is not None and str(output) == "-":
        output = None  # stdout, as `-o -` means to Unix tools
    if output:
        check_output(output, "-o")  # a device or pipe first; all before the store is read
    fmt = output_format(output, fmt, FORMATS, "-o", "csv")
    camp = Campaign.open(open_store(store), campaign)
    order = {"runs": "job_id, cycle", "requests": "job_id, cycle, request_index",
             "samples": "job_id, cycle, t_s, gpu_index", "stats": "job_id"}[table]
    if output:
        check_folder(output, "-o")
    dest = output or Path(tempfile.mkdtemp(prefix="llem-export-")) / "stdout"
    try:
        with atomic_file(dest) as tmp:
            camp.con.execute(f"COPY (SELECT * FROM {table} WHERE campaign = "
                             f"{_literal(campaign)} ORDER BY {order}) TO {_literal(tmp)} "
                             f"({OPTIONS[fmt]})")
        if not output:
            with open(dest, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer)
            sys.stdout.flush()
    except duckdb.Error as exc:
        raise UserError(f"export failed: {str(exc).splitlines()[0]}") from None
    finally:
        camp.close()
        if not output:
            shutil.rmtree(dest.parent, ignore_errors=True)


def _literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"

