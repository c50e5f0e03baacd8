"""Cycles across load groups on a real local Ray with 1 declared GPU (noop backend): by
default cycle 0 of every group runs before cycle 1 of any, a model load each time; the
opt-out (interleave: within_group) runs each group's cycles together, one load per group.
Rows carry their place in the timeline; resume and --rerun keep the counts right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llem import run_campaign
from llem.config.load import load_text
from llem.scheduler.state import Summary
from llem.store.query import run_sql
from llem.store.store import Store

pytestmark = pytest.mark.slow

GRID = """
name: order
models: [a, b]
backends: [noop]
cycles: {cycles}
grid: {{batch_size: [1, 2], max_new_tokens: 2}}
noop: {{request_s: 0.02}}
measurement: {{warmup_requests: 0, thermal_gaps: false}}
resources: {{gpus_per_job: 1}}
{extra}"""


@pytest.fixture(scope="module")
def one_gpu(llem_cache: Path):
    """A real local Ray with 1 declared GPU: every job runs on it, one after another."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False,
             namespace="llem", logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def _run(store: Path, cycles: int = 3, extra: str = "", rerun: bool = False) -> Summary:
    text = GRID.format(cycles=cycles, extra=extra)
    return run_campaign(load_text(text), store=Store(store), rerun=rerun)


def _rows(store: Path) -> list[dict[str, Any]]:
    return run_sql(Store(store), "SELECT model, cycle, worker_pid, model_loads, "
                   "timeline_index, campaign_elapsed_s, cycle_order, session_id, "
                   "epoch(started_at) AS t FROM runs_all ORDER BY t").to_pylist()


def _blocks(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(model, cycle) of each run of consecutive rows."""
    out: list[tuple[str, int]] = []
    for r in rows:
        if not out or out[-1] != (r["model"], r["cycle"]):
            out.append((r["model"], r["cycle"]))
    return out


def test_default_interleaves_cycles_across_groups_with_a_load_each(one_gpu,
                                                                  tmp_path) -> None:
    """b has one point more than a: longest first within a cycle, but never a later cycle
    of b before an earlier one of a."""
    s = _run(tmp_path, extra="experiments: [{model: b, batch_size: 4}]\n")
    assert (s.ok, s.failed, s.workers, s.model_loads) == (15, 0, 1, 6)
    rows = _rows(tmp_path)
    assert _blocks(rows) == [("b", 0), ("a", 0), ("b", 1), ("a", 1), ("b", 2), ("a", 2)]
    assert len({r["worker_pid"] for r in rows}) == 1  # one process switches models
    assert [r["model_loads"] for r in rows] == [1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 5, 5, 5, 6, 6]
    assert [r["timeline_index"] for r in rows] == list(range(15))  # ran as planned
    elapsed = [r["campaign_elapsed_s"] for r in rows]
    assert elapsed == sorted(elapsed) and 0 <= elapsed[0] < elapsed[-1] < s.elapsed_s
    sess = run_sql(Store(tmp_path), "SELECT model_loads FROM sessions").to_pylist()
    assert sess == [{"model_loads": 6}]


def test_within_group_runs_each_groups_cycles_together_with_one_load(one_gpu,
                                                                     tmp_path) -> None:
    s = _run(tmp_path, extra="interleave: within_group\n")
    assert (s.ok, s.failed, s.workers, s.model_loads) == (12, 0, 1, 2)
    rows = _rows(tmp_path)
    first = rows[0]["model"]
    other = "b" if first == "a" else "a"
    assert _blocks(rows) == [(first, 0), (first, 1), (first, 2), (other, 0), (other, 1),
                             (other, 2)]
    assert [r["model_loads"] for r in rows] == [1] * 6 + [2] * 6
    assert [r["timeline_index"] for r in rows] == list(range(12))


def test_williams_rows_order_the_groups_per_cycle(one_gpu, tmp_path) -> None:
    s = _run(tmp_path, cycles=2, extra="order: williams\n")
    assert (s.ok, s.model_loads) == (8, 3)  # a b | b a: the second b reuses the loaded model
    rows = _rows(tmp_path)
    assert _blocks(rows) == [("a", 0), ("b", 0), ("b", 1), ("a", 1)]
    assert {r["cycle_order"] for r in rows} == {"williams"}


def test_resume_and_rerun_keep_counts_and_timeline(one_gpu, tmp_path) -> None:
    """A campaign grown from 2 cycles to 3 (as a run interrupted after cycle 1 would be):
    the run resumes with cycle 2 only, and its rows take the places the full plan gives
    them; --rerun measures every job again, a load per group per cycle."""
    first = _run(tmp_path, cycles=2)
    assert (first.ok, first.model_loads) == (8, 4)
    again = _run(tmp_path)
    assert (again.total, again.ok, again.skipped, again.model_loads) == (12, 4, 8, 2)
    rows = _rows(tmp_path)
    assert sorted(r["timeline_index"] for r in rows) == list(range(12))
    late = [r for r in rows if r["session_id"] == rows[-1]["session_id"]]
    assert _blocks(late) == [("a", 2), ("b", 2)]
    assert min(r["campaign_elapsed_s"] for r in late) < 60  # from its own session's start
    redo = _run(tmp_path, rerun=True)
    assert (redo.total, redo.ok, redo.skipped, redo.model_loads) == (12, 12, 0, 6)


def test_an_interrupted_campaign_resumes_in_its_planned_order(one_gpu, tmp_path) -> None:
    """Stopped (as by Ctrl-C) after its 5th result, in cycle 1 of a: every job is counted
    (ok or not run), and the next run does the rest in the planned order."""
    def stop_at_5(row: Any, s: Summary) -> None:
        if s.ok == 5:
            raise KeyboardInterrupt

    text = GRID.format(cycles=3, extra="")
    cut = run_campaign(load_text(text), store=Store(tmp_path), on_result=stop_at_5)
    assert cut.interrupted and cut.ok == 5
    assert cut.total == cut.ok + cut.failed + cut.skipped + cut.not_run == 12
    rest = _run(tmp_path)
    assert (rest.total, rest.skipped, rest.ok) == (12, 5, 7)
    rows = _rows(tmp_path)
    assert [r["timeline_index"] for r in rows] == list(range(12))  # as one run would have
    assert _blocks(rows) == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
