"""The store's tables: their fixed Arrow schemas (made from the column declarations in
llem.store.columns), the file names llem writes, and the schema version every row carries.
Fixed schemas keep all-null columns typed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from llem.store.columns import COLUMNS
from llem.store.run_row import RunRow

SCHEMA_VERSION = 1

TABLES = ("runs", "requests", "samples", "sessions")
MAGIC = b"PAR1"  # a Parquet file's first and last four bytes
# <table>/campaign=<name>/<job_id>-c<cycle>.parquet, job_id being a hex digest (llem.config.grid);
# sessions/campaign=<name>/<UTC time>-<hex>.parquet, one per driver session;
# <table>/campaign=<name>/compact-<UTC time>-<hex>.parquet, written by `llem compact`
_CAMPAIGN = r"campaign=[A-Za-z0-9][A-Za-z0-9_.-]*/"
DATA_PATH = re.compile(rf"(?:(?:runs|requests|samples)/{_CAMPAIGN}[0-9a-f]{{8,64}}-c[0-9]+|"
                       rf"sessions/{_CAMPAIGN}[0-9]{{8}}T[0-9]{{6}}-[0-9a-f]{{8}}|"
                       rf"(?:runs|requests|samples|sessions)/{_CAMPAIGN}"
                       r"compact-[0-9]{8}T[0-9]{6}-[0-9a-f]{8})\.parquet")
# made from the declarations (llem.store.columns): same names, order and types as every
# store written with this SCHEMA_VERSION; the dynamic engine_<key> columns are appended
SCHEMAS: dict[str, pa.Schema] = {
    table: pa.schema([(c.name, c.type) for c in cols if c.type is not None])
    for table, cols in COLUMNS.items()}


def to_table(name: str, rows: Sequence[Mapping[str, Any] | RunRow]) -> pa.Table:
    """Rows (dicts, or RunRow records for runs) -> a table with the fixed schema; runs'
    engine_* columns are appended typed."""
    dicts = [r.row() if isinstance(r, RunRow) else r for r in rows]
    schema = SCHEMAS[name]
    names = frozenset(schema.names)  # schema.names builds a new list on every access
    extra = sorted({k for r in dicts for k in r if k not in names})
    unknown = [k for k in extra if not k.startswith("engine_")]
    if unknown:
        raise ValueError(f"columns not in the {name} schema: {unknown}")
    fixed = [{k: v for k, v in r.items() if k in names} for r in dicts]
    for r in fixed:
        for col in ("started_at", "finished_at"):
            if isinstance(r.get(col), float):
                r[col] = int(r[col] * 1e6)
    # int microseconds go straight into timestamp columns: no Table.cast afterwards (a
    # Python-level cast per column, half of this function's time on a one-row runs table)
    table = pa.Table.from_pylist(fixed, schema=schema)
    for k in extra:
        table = table.append_column(k, pa.array([r.get(k) for r in dicts]))
    return table


def is_data_path(rel: str) -> bool:
    """Is rel (a path under the store root) named as llem names its data files?"""
    return DATA_PATH.fullmatch(rel.lstrip("/")) is not None


def check_schema_versions(versions: Iterable[int]) -> str | None:
    """A message when the store was written by another schema version."""
    other = sorted({v for v in versions if v != SCHEMA_VERSION})
    if not other:
        return None
    newer = [v for v in other if v > SCHEMA_VERSION]
    if newer:
        return (f"store has schema version {newer[-1]}, newer than this llem's "
                f"{SCHEMA_VERSION}: upgrade llem")
    return (f"store has schema version {other[0]}, older than this llem's {SCHEMA_VERSION}: "
            "re-run the campaign into a new store")
