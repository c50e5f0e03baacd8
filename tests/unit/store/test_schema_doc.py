"""docs/schema.md's column tables are made from the one declaration of every column
(llem.store.columns): a column added, removed or changed in llem/store/ without regenerating
the page fails here. The stats view's table is written by hand: every column of the real
view must be on it. Units agree with the unit suffixes of the names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llem.store.columns import COLUMNS, REGENERATE, main, markdown, regions, render
from llem.store.query import STATS_METRICS, connect
from llem.store.store import Store
from tests.support.paths import ROOT

DOC = ROOT / "docs" / "schema.md"
ROW = re.compile(r"^\| `([^`]+)` \| ([^|]+) \| ([^|]+) \| (.+) \|$")
REGION = re.compile(r"<!-- columns:([a-z:]+) -->\n(.*?)<!-- /columns:\1 -->", re.S)


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


def test_column_tables_are_generated_from_the_declarations() -> None:
    text = DOC.read_text()
    on_page = {m.group(1): m.group(2) for m in REGION.finditer(text)}
    want = regions()
    stale = sorted(n for n, cols in want.items() if on_page.get(n) != markdown(cols) + "\n")
    assert render(text) == text and not stale, (
        f"docs/schema.md's column tables {stale} differ from the column declarations in "
        f"llem/store/ (llem/store/columns.py, run_fields.py, run_row.py): run `{REGENERATE}` "
        "to regenerate them")


def test_each_table_sits_in_its_tables_section() -> None:
    """A runs:<group> table in the runs section, the requests table in requests', ...; and
    every column of every table is on the page once."""
    for name in regions():
        table = name.split(":")[0]
        assert f"<!-- columns:{name} -->" in section(table), f"{name} outside `{table}`"
    for table, cols in COLUMNS.items():
        assert sorted(rows(section(table))) == sorted(c.name for c in cols), table


def test_every_column_has_a_unit_and_a_description() -> None:
    for table, cols in COLUMNS.items():
        for c in cols:
            assert c.unit and len(c.how) > 10, f"{table}.{c.name}: unit and how it is measured"
            assert "|" not in c.unit + c.how and "\n" not in c.how, f"{table}.{c.name}"


UNITS = {"_s": "s", "_j": "J", "_w": "W", "_c": "°C", "_mhz": "MHz", "_mib": "MiB",
         "_pct": "%"}


def _suffix_unit_errors(table: str, name: str, unit: str) -> list[str]:
    base = name.removesuffix("_per_gpu")
    errors = []
    for suffix, want in UNITS.items():
        if base.endswith(suffix) and not base.endswith("_per" + suffix):
            ok = {want, "J/token", "J/request"} if suffix == "_j" else {want}
            if unit not in ok:
                errors.append(f"{table}.{name}: unit {unit!r}, name says {want}")
    return errors


def test_unit_suffixes_match_documented_units() -> None:
    """A name's unit suffix and its unit agree (e.g. no `_j` column in W): the declared
    columns, and the stats view's hand-written table."""
    errors = [e for table, cols in COLUMNS.items() for c in cols
              for e in _suffix_unit_errors(table, c.name, c.unit)]
    errors += [e for name, (_, unit, _) in rows(section("stats")).items()
               for e in _suffix_unit_errors("stats", name, unit)]
    assert not errors, errors


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


def test_regenerating_rewrites_only_the_tables(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m llem.store.columns [--check] [PATH]`: a drifted table is reported (exit 1)
    or rewritten, the prose around it kept; a page missing a table is refused."""
    page = tmp_path / "schema.md"
    good = DOC.read_text()
    drifted = good.replace("| `ttft_s` | double | s |", "| `ttft_s` | double | ms |")
    assert drifted != good
    page.write_text(drifted + "\nprose kept\n")
    assert main(["--check", str(page)]) == 1
    assert REGENERATE in capsys.readouterr().err
    assert main([str(page)]) == 0
    assert page.read_text() == good + "\nprose kept\n"
    assert main(["--check", str(page)]) == 0
    page.write_text(good.replace("<!-- columns:samples -->", ""))
    with pytest.raises(ValueError, match="missing \\['samples'\\]"):
        main([str(page)])
