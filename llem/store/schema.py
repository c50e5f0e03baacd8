"""The store's tables: their fixed Arrow schemas (made from the column declarations in
llem.store.columns), the file names llem writes, and the schema version every row carries.
Fixed schemas keep all-null columns typed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from llem.errors import UserError
from llem.store.columns import COLUMNS
from llem.store.run_row import RunRow

SCHEMA_VERSION = 1

TABLES = ("runs", "requests", "samples", "sessions")
MAGIC = b"PAR1"  # a Parquet file's first and last four bytes
# A session: `<UTC time it started>-<8 hex>`, its sessions file's name and the session_id of
# every row it wrote; the names sort in time order.
SESSION = r"[0-9]{8}T[0-9]{6}-[0-9a-f]{8}"
# <table>/campaign=<name>/<job_id>-c<cycle>-<session>.parquet, job_id being a hex digest
# (llem.config.grid): one measurement of a job and cycle; stores written before sessions
# named their files <job_id>-c<cycle>.parquet (still read);
# sessions/campaign=<name>/<session>.parquet, one per driver session;
# <table>/campaign=<name>/compact-<UTC time>-<hex>.parquet, written by `llem compact`
_CAMPAIGN = r"campaign=[A-Za-z0-9][A-Za-z0-9_.-]*/"
DATA_PATH = re.compile(rf"(?:(?:runs|requests|samples)/{_CAMPAIGN}[0-9a-f]{{8,64}}-c[0-9]+"
                       rf"(?:-{SESSION})?|"
                       rf"sessions/{_CAMPAIGN}{SESSION}|"
                       rf"(?:runs|requests|samples|sessions)/{_CAMPAIGN}"
                       r"compact-[0-9]{8}T[0-9]{6}-[0-9a-f]{8})\.parquet")
# columns every file of a table has (a file without them is not llem's)
ID_COLUMNS = {"runs": ("schema_version", "campaign", "job_id", "cycle", "status"),
              "requests": ("schema_version", "campaign", "job_id", "cycle"),
              "samples": ("schema_version", "campaign", "job_id", "cycle"),
              "sessions": ("schema_version", "campaign", "session_id")}
# made from the declarations (llem.store.columns): same names, order and types as every
# store written with this SCHEMA_VERSION; the dynamic engine_<key> columns are appended
SCHEMAS: dict[str, pa.Schema] = {
    table: pa.schema([(c.name, c.type) for c in cols if c.type is not None])
    for table, cols in COLUMNS.items()}


class StoreError(UserError):
    """The store cannot be read or written as asked (another schema version, disk full, not
    a folder, not writable): one line."""


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


def schema_problem(table: str, schema: pa.Schema) -> str | None:
    """Why a file of `table` with this schema is not llem's, or None: every column must be
    one the table declares, with its declared type (the runs table's dynamic engine_<key>
    columns: any name and type), and the identity columns must be there. A column of
    another type (a text batch_size) would turn the column of every file into that type in
    the views' union; a file of other columns would add rows that are not results."""
    declared = SCHEMAS[table]
    dynamic = any(c.dynamic for c in COLUMNS[table])
    have = set(schema.names)
    missing = [c for c in ID_COLUMNS[table] if c not in have]
    if missing:
        return f"without llem's columns {', '.join(missing)}"
    unknown, wrong = [], []
    for f in schema:
        i = declared.get_field_index(f.name)
        if i < 0:
            if not (dynamic and f.name.startswith("engine_")):
                unknown.append(f.name)
        elif not f.type.equals(declared.field(i).type):
            wrong.append(f"{f.name} is {f.type}, not {declared.field(i).type}")
    if unknown:
        more = f" (+{len(unknown) - 3} more)" if len(unknown) > 3 else ""
        return (f"columns that are not llem's: {', '.join(unknown[:3])}{more} (written by "
                "a newer llem? upgrade llem)")
    if wrong:
        more = f" (+{len(wrong) - 3} more)" if len(wrong) > 3 else ""
        return f"columns of another type: {'; '.join(wrong[:3])}{more}"
    return None


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


def conform(table: str, t: pa.Table, names: list[str] | None) -> pa.Table:
    """t with the columns `names` (default: every declared one, then t's engine_<key>
    ones), each in its declared type; a column no file of t had is null."""
    declared = SCHEMAS[table]
    have = set(t.column_names)
    if names is None:
        names = [*declared.names, *(c for c in t.column_names if declared.get_field_index(c) < 0)]
    cols = []
    for name in names:
        i = declared.get_field_index(name)
        if name in have:
            cols.append(t[name] if i < 0 else t[name].cast(declared.field(i).type))
        else:
            cols.append(pa.nulls(t.num_rows, declared.field(i).type if i >= 0 else pa.null()))
    return pa.Table.from_arrays(cols, names=names)
