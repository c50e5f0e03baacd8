"""A query's columns in types Python holds as they are: every other value as DuckDB writes it.

Arrow hands DuckDB's values to Python, and some do not survive the trip: 'infinity' and
dates past 9999 raised OverflowError (a traceback), TIME '24:00:00' came back as 00:00, a
TIMETZ lost its offset, the largest UHUGEINT read -1, a BIT its raw bytes. Those columns
(and the parts of nested ones that hold them) are cast to VARCHAR in DuckDB first.
"""

from __future__ import annotations

from typing import Any

# DuckDB type ids whose values Python holds as they are (BLOB as bytes, DECIMAL and HUGEINT as
# Decimal, UUID and ENUM as text); nested types are looked into; all else becomes VARCHAR
KEPT = frozenset({"boolean", "tinyint", "smallint", "integer", "bigint", "utinyint",
                  "usmallint", "uinteger", "ubigint", "hugeint", "float", "double", "decimal",
                  "varchar", "uuid", "blob", "enum"})


def printable(rel: Any) -> Any:
    """rel, with each column whose type Python cannot hold cast (in part) to VARCHAR; rel
    itself when none is. Columns are named by position: two of one name stay two."""
    targets = [_as_text(t) for t in rel.types]
    if all(t is None for t in targets):
        return rel
    parts = [f"#{i}" if t is None else f"CAST(#{i} AS {t})"
             for i, t in enumerate(targets, 1)]
    return rel.project(", ".join(f"{p} AS {_quoted(c)}" for p, c in zip(parts, rel.columns)))


def _as_text(t: Any) -> str | None:
    """The SQL type t becomes (VARCHAR in place of what Python cannot hold, in lists, arrays,
    structs and maps too); None where t is kept as it is."""
    kind = t.id
    if kind in KEPT:
        return None
    if kind == "union":  # its value is one member's (the first child is the tag)
        kept = all(_as_text(child) is None for _, child in t.children[1:])
        return None if kept else "VARCHAR"
    if kind in ("list", "array", "map", "struct"):
        children = [(name, child) for name, child in t.children if name != "size"]
        made = [_as_text(child) for _, child in children]
        if all(m is None for m in made):
            return None
        inner = [str(child) if m is None else m for (_, child), m in zip(children, made)]
        if kind == "list":
            return f"{inner[0]}[]"
        if kind == "array":
            return f"{inner[0]}[{dict(t.children)['size']}]"
        if kind == "map":
            return f"MAP({inner[0]}, {inner[1]})"
        return "STRUCT(" + ", ".join(f"{_quoted(name)} {text}" for (name, _), text
                                     in zip(children, inner)) + ")"
    return "VARCHAR"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
