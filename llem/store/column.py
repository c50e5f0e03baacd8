"""One stored column, declared once: name, Arrow type, unit and how it is measured.

The runs row is a dataclass (llem.store.run_row.RunRow) whose fields are declared with col():
the field's name is the column's, its metadata the rest. columns_of() reads the Column
records back in field order; llem.store.columns lists every table's columns, and the
Parquet schemas (llem.store.schema.SCHEMAS) and docs/schema.md are made from them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

S, I16, I32, I64, F, B = pa.string(), pa.int16(), pa.int32(), pa.int64(), pa.float64(), pa.bool_()
TS = pa.timestamp("us", tz="UTC")  # written from float seconds since the epoch (to_table)
LS, LF = pa.list_(S), pa.list_(F)

# the runs table's sections in docs/schema.md, in page order (a column's group)
RUN_GROUPS = ("identity", "config", "load", "env", "scheduling", "gap", "idle", "warmup",
              "throughput", "energy", "validity", "server")
_META = "llem.column"


@dataclass(frozen=True, slots=True)
class Column:
    """name, Arrow type (None: the dynamic engine_<key> columns, documented as one row),
    unit ("-" for none), how it is measured or derived, and its section of the runs page."""

    name: str
    type: pa.DataType | None
    unit: str
    how: str
    group: str = ""

    @property
    def dynamic(self) -> bool:
        return self.type is None

    def doc_type(self) -> str:
        """How docs/schema.md writes the type."""
        return "(dynamic)" if self.type is None else doc_type(self.type)


def doc_type(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return f"list\\<{doc_type(t.value_type)}\\>"
    if pa.types.is_timestamp(t):
        return f"timestamp[{t.unit}, {t.tz}]"
    return str(t)


def col(group: str, type_: pa.DataType, unit: str, how: str) -> Any:
    """A runs column as a dataclass field (default None: not measured)."""
    if group not in RUN_GROUPS:
        raise ValueError(f"unknown runs group {group!r}: one of {RUN_GROUPS}")
    return field(default=None, metadata={_META: ("", type_, unit, how, group)})


def dynamic(name: str, group: str, unit: str, how: str) -> Any:
    """A field holding columns named at run time (name: how the page names them), {} default."""
    return field(default_factory=dict, metadata={_META: (name, None, unit, how, group)})


def columns_of(cls: type) -> tuple[Column, ...]:
    """The Column records of a dataclass's fields, in field order (fields without one are
    left out)."""
    out = []
    for f in dataclasses.fields(cls):
        if _META in f.metadata:
            name, type_, unit, how, group = f.metadata[_META]
            out.append(Column(name or f.name, type_, unit, how, group))
    return tuple(out)


def python_type(t: pa.DataType) -> Any:
    """The annotation a record field of Arrow type t has: nullable, as every column may be
    null. Timestamps are float seconds since the epoch; a per-GPU list of floats holds None
    for a GPU whose value is missing."""
    if t == LS:
        return list[str] | None
    if t == LF:
        return list[float | None] | None
    if pa.types.is_timestamp(t) or pa.types.is_floating(t):
        return float | None
    if pa.types.is_integer(t):
        return int | None
    if pa.types.is_boolean(t):
        return bool | None
    if pa.types.is_string(t):
        return str | None
    raise TypeError(f"no record type for Arrow type {t}")
