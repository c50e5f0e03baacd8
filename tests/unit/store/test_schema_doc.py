"""docs/schema.md documents every stored column: a column added to llem.store.schema.SCHEMAS (or
the stats view) without a row in its table's section fails here, as does a documented
column that no longer exists or whose type changed."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from llem.store.query import STATS_METRICS, connect
from llem.store.schema import SCHEMAS
from llem.store.store import Store
from tests.support.paths import ROOT

DOC = ROOT / "docs" / "schema.md"
ROW = re.compile(r"^\| `([^`]+)` \| ([^|]+) \| ([^|]+) \| (.+) \|$")
DYNAMIC = "engine_<key>"  # runs' engine_* columns, one per engine argument


def sections() -> dict[str, str]:
    """Level-2 sections of the page by heading."""
    parts = re.split(r"^## ", DOC.read_text(), flags=re.M)
    return {p.split("\n", 1)[0]: p for p in parts[1:]}


def section(name: str) -> str:
    found = [body for head, body in sections().items() if head.startswith(f"`{name}`")
             or f"`{name}` view" in head]
    assert len(found) == 1, f"docs/schema.md needs one '## `{name}`' section"
    return found[0]


def rows(text: str) -> dict[str, tuple[str, str, str]]:
    """column -> (type, unit, how) of every table row; a column twice is an error."""
    out: dict[str, tuple[str, str, str]] = {}
    for line in text.splitlines():
        m = ROW.match(line.strip())
        if m:
            name, typ, unit, how = (g.strip() for g in m.groups())
            assert name not in out, f"{name} documented twice in one section"
            out[name] = (typ, unit, how)
    return out


def doc_type(t: pa.DataType) -> str:
    """How the page writes an Arrow type."""
    if pa.types.is_list(t):
        return f"list\\<{doc_type(t.value_type)}\\>"
    if pa.types.is_timestamp(t):
        return f"timestamp[{t.unit}, {t.tz}]"
    return str(t)


@pytest.mark.parametrize("table", sorted(SCHEMAS))
def test_every_column_documented_with_type_unit_and_method(table: str) -> None:
    documented = rows(section(table))
    schema = SCHEMAS[table]
    missing = [n for n in schema.names if n not in documented]
    assert not missing, f"{table} columns missing from docs/schema.md: {missing}"
    for f in schema:
        typ, unit, how = documented[f.name]
        assert typ == doc_type(f.type), f"{table}.{f.name}: documented {typ}, is {f.type}"
        assert unit and len(how) > 10, f"{table}.{f.name}: unit and how it is measured"
    stale = set(documented) - set(schema.names) - {DYNAMIC}
    assert not stale, f"docs/schema.md documents {table} columns that do not exist: {stale}"


def test_unit_suffixes_match_documented_units() -> None:
    """A name's unit suffix and its documented unit agree (e.g. no `_j` column in W)."""
    units = {"_s": "s", "_j": "J", "_w": "W", "_c": "°C", "_mhz": "MHz", "_mib": "MiB",
             "_pct": "%"}
    for table in SCHEMAS:
        for name, (_, unit, _) in rows(section(table)).items():
            base = name.removesuffix("_per_gpu")
            for suffix, want in units.items():
                if base.endswith(suffix) and not base.endswith("_per" + suffix):
                    ok = {want, "J/token", "J/request"} if suffix == "_j" else {want}
                    assert unit in ok, f"{table}.{name}: unit {unit!r}, name says {want}"


def test_engine_columns_documented() -> None:
    assert DYNAMIC in rows(section("runs"))


def test_stats_view_columns_documented(tmp_path: Path) -> None:
    """Every column of the real stats view is a documented group column or a documented
    metric with one of the four aggregate suffixes."""
    documented = rows(section("stats"))
    con = connect(Store(tmp_path / "store"))
    try:
        cols = [r[0] for r in con.execute("DESCRIBE stats").fetchall()]
    finally:
        con.close()
    assert set(STATS_METRICS) <= set(documented)
    for c in cols:
        base = re.sub(r"_(mean|std|cv|ci95)$", "", c)
        assert c in documented or (base in STATS_METRICS and base in documented), \
            f"stats column {c} missing from docs/schema.md"
