"""The runs row is one declaration: RunRow's fields are the runs columns, typed as their
Arrow types say; the schemas made from the declarations are those of stores already
written (same names, order and types); the record becomes the Parquet row."""

from __future__ import annotations

import dataclasses
import pickle
from typing import get_type_hints

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llem.store.column import RUN_GROUPS, python_type
from llem.store.columns import COLUMNS
from llem.store.run_row import NAMES, RUN_COLUMNS, Result, RunRow
from llem.store.schema import SCHEMAS, to_table
from tests.support.paths import DATA

OLD = DATA / "store_before_layout"  # written before the declarations (commit 3961e1b)


def test_record_fields_are_the_runs_columns_with_their_types() -> None:
    hints = get_type_hints(RunRow)
    fields = dataclasses.fields(RunRow)
    assert [f.name for f in fields] == [
        "engine_columns" if c.dynamic else c.name for c in RUN_COLUMNS]
    wrong = [f"{c.name}: {hints[c.name]} for Arrow {c.type}" for c in RUN_COLUMNS
             if c.type is not None and hints[c.name] != python_type(c.type)]
    assert not wrong, wrong
    assert {c.group for c in RUN_COLUMNS} == set(RUN_GROUPS)
    assert list(NAMES) == SCHEMAS["runs"].names


@pytest.mark.parametrize("table", ["runs", "requests", "sessions"])
def test_schemas_extend_those_of_a_store_written_before(table: str) -> None:
    """Every column a store written before holds is still declared, with its type, in its
    order; columns added since (server mode) come as nullable additions."""
    files = sorted((OLD / table).rglob("*.parquet"))
    assert files
    for f in files:
        written = pq.read_schema(f).remove_metadata()
        fixed = [x for x in written if not (
            table == "runs" and x.name.startswith("engine_") and x.name != "engine_json")]
        now = SCHEMAS[table]
        assert [now.field(x.name) for x in fixed] == fixed, f.name
        order = [now.get_field_index(x.name) for x in fixed]
        assert order == sorted(order), f.name
        assert all(x.nullable for x in now if x.name not in {y.name for y in fixed})


def test_samples_schema_unchanged() -> None:
    """No store before the layout has samples (CPU jobs): the table as it was, with the
    session that measured each sample added after the identity columns."""
    f, i32, s = pa.float64(), pa.int32(), pa.string()
    old = pa.schema([
        ("schema_version", pa.int16()), ("campaign", s), ("job_id", s), ("cycle", i32),
        ("session_id", s), ("t_s", f), ("gpu_uuid", s), ("gpu_index", i32), ("power_w", f),
        ("temperature_c", f), ("sm_clock_mhz", f), ("gpu_util_pct", f), ("mem_used_mib", f)])
    # columns added since (server mode, validity) come after them
    assert pa.schema(list(SCHEMAS["samples"])[:len(old)]).equals(old)
    assert list(SCHEMAS) == list(COLUMNS) == ["runs", "requests", "sessions", "samples"]


def test_record_to_row_and_table() -> None:
    run = RunRow(schema_version=1, campaign="c", job_id="ab12", cycle=0, status="ok",
                 started_at=1.5, gpu_uuids=["GPU-a"], energy_j=2.0)
    run.engine_columns["engine_token_s"] = 0.25
    run.update({"latency_p50_s": 0.1, "gap_s": 0.0})
    row = run.row()
    assert list(row) == [*NAMES, "engine_token_s"]
    assert row["latency_p50_s"] == 0.1 and row["attempts"] is None
    t = to_table("runs", [run])
    assert t.schema.names == [*NAMES, "engine_token_s"]
    assert pa.schema([t.schema.field(n) for n in NAMES]).equals(SCHEMAS["runs"])
    got = t.to_pylist()[0]
    assert got["started_at"].timestamp() == 1.5 and got["gpu_uuids"] == ["GPU-a"]
    assert run.key == ("ab12", 0)


def test_record_refuses_unknown_columns() -> None:
    run = RunRow()
    with pytest.raises(ValueError, match="not runs columns: \\['bogus'\\]"):
        run.update({"bogus": 1, "energy_j": 1.0})
    assert run.energy_j is None  # nothing set
    with pytest.raises(AttributeError):
        run.energy_jj = 1.0  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        RunRow(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="job_id and cycle"):
        _ = run.key


def test_result_is_plain_data_that_pickles() -> None:
    """What a worker returns crosses to the driver through pickle (Ray)."""
    run = RunRow(job_id="ab12", cycle=3, neighbor_jobs=["x-c0"])
    run.engine_columns["engine_k"] = "v"
    back = pickle.loads(pickle.dumps(Result(run, [{"request_index": 0}])))
    assert back.run == run and back.run.engine_columns == {"engine_k": "v"}
    assert back.requests == [{"request_index": 0}] and back.samples == []
