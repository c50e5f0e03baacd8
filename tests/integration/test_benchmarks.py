"""The benchmarks' smallest configurations, so bench code cannot rot (`make bench` is not
part of `make test`; no timing is asserted here, only that each benchmark runs end to end
and returns figures with their two absolute numbers)."""

from __future__ import annotations

import pytest

import benchmarks
from benchmarks import (
    lazy,
    makespan_compare,
    overhead_cpu,
    query,
    ray_slots,
    reuse,
    scale,
    store_scale,
)
from benchmarks.__main__ import BENCHMARKS
from benchmarks.figures import Figure, dump, load, markdown, render

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray4(llem_cache):
    """One local Ray with 4 declared GPUs for every benchmark below (they reuse it)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, num_gpus=4, include_dashboard=False,
             namespace="llem", logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def _check(figs: list[Figure], items: set[str]) -> None:
    assert {f.item for f in figs} == items
    for f in figs:
        assert f.value >= 0 and f.ref > 0, f
        assert f.met in (True, False, None)
    render(figs)  # the table builds


def test_every_benchmark_is_listed() -> None:
    assert benchmarks.__doc__
    for name in BENCHMARKS:
        assert callable(__import__(f"benchmarks.{name}", fromlist=["main"]).main)


def test_figure_goals() -> None:
    f = Figure("1", "x", 2.0, 4.0, "s", goal="<= 0.5")
    assert (f.ratio, f.met) == (0.5, True)
    assert Figure("1", "x", 3.0, 1.0, "s", goal="value < 2").met is False
    assert Figure("1", "x", 3.0, 1.0, "s").met is None


def test_figures_round_trip_to_markdown(tmp_path) -> None:
    figs = [Figure("5 query", "a / b", 0.5, 2.0, "s", "DuckDB", "pyarrow", "value < 1")]
    dump(figs, str(tmp_path / "f.json"))
    assert load(str(tmp_path / "f.json")) == figs
    assert "| 5 query | a / b | DuckDB 0.500 s | pyarrow 2.000 s | 0.250 | value < 1 | yes |" \
        in markdown(figs)


def test_ideal_makespan_bin_packs() -> None:
    assert makespan_compare.ideal_makespan([3, 3, 2, 2, 2], gpus=2) == 6
    assert makespan_compare.ideal_makespan([5, 1, 1], gpus=4) == 5  # the longest job bounds it
    assert makespan_compare.lpt_makespan([3, 3, 2, 2, 2], gpus=2) == 7  # greedy is not optimal


def test_makespan_overhead_and_tune(ray4, tmp_path) -> None:
    figs = makespan_compare.run(models=2, tokens=(1,), batches=(1,), zero_jobs=4, load_s=0.01)
    _check(figs, {"1 makespan", "2 overhead"})


def test_packed_makespan(ray4) -> None:
    """The cluster work's benchmark, once it is there (listed in BENCHMARKS when present)."""
    makespan = pytest.importorskip("benchmarks.makespan")
    _check(makespan.figures(makespan.run(jobs=8, gpus=4, job_s=0.01, models=2)),
           {"1 makespan", "2 overhead"})


def test_reuse(ray4) -> None:
    figs = reuse.run(batch_sizes="[1, 2]", tokens="1", streaming="false")
    _check(figs, {"3 reuse"})
    assert figs[0].value == 2 and figs[0].ref == 4  # 2 models: 2 loads vs one per job


def test_lazy_joins_the_running_ray(ray4) -> None:
    one = lazy.measure(1000)  # one subprocess, through the real config + driver path
    assert one["points"] == 1000 and one["first_dispatch_s"] > 0 and one["peak_rss_mb"] > 0
    _check(lazy.figures(one, one), {"4 lazy"})


def test_query(tmp_path) -> None:
    _check(query.run(jobs=3, requests=5), {"5 query"})


def test_overhead_cpu(llem_cache) -> None:
    _check(overhead_cpu.run(rounds=1, batch=1, tokens=2, prompts=1), {"6 overhead"})


def test_idle_breakdown_adds_up() -> None:
    """benchmarks.idle: per GPU slot, startup + between jobs + between groups + tail + in
    jobs + unused slots = GPUs x makespan - nominal durations."""
    from benchmarks.idle import breakdown

    def row(s, f, dev, pid, key):
        return {"s": s, "f": f, "node_id": "n", "visible_devices": dev, "worker_pid": pid,
                "load_key": key}

    rows = [row(1.0, 2.0, "0", 7, "a"), row(2.1, 3.1, "0", 7, "a"),   # 0.1 s round trip
            row(3.6, 4.6, "0", 7, "b"),                               # reused: new group
            row(2.0, 3.2, "1", 8, "c")]                               # 0.2 s in the job
    idle = breakdown(rows, start=0.0, end=5.0, gpus=3, nominal_s=4.0)
    assert (idle.startup_s, idle.between_jobs_s, idle.between_groups_s) == \
        pytest.approx((3.0, 0.1, 0.5))
    assert (idle.tail_s, idle.in_jobs_s, idle.unused_s) == pytest.approx((0.4 + 1.8, 0.2, 5.0))
    assert idle.total_s == pytest.approx(3 * 5.0 - 4.0)
    assert idle.scheduling_s == pytest.approx(0.1 + 0.5 + 0.4 + 1.8)  # no startup, in jobs
    assert idle.processes == {7, 8} and (idle.job_switches, idle.group_switches) == (1, 1)
    assert "between groups 0.50 s x 1" in idle.line()


def test_scale_smoke() -> None:
    """The scheduling core on 8 and 64 simulated GPUs, and 64 that lose 4 nodes."""
    figs = scale.main((8, 64), lossy=64)
    _check(figs, {"scale"})
    assert any("driver CPU per job, 64 / 8 GPUs" in f.name for f in figs)
    assert any("4 nodes lost" in f.name for f in figs)


def test_store_scale_smoke() -> None:
    """20 jobs through the driver's writer, listed, resume-checked and queried by the CLI
    before and after llem compact."""
    r = store_scale.run(20)
    assert r["files"] >= 40 and r["files_after"] < r["files"]
    assert r["before"]["rss_peak_mb"] >= r["before"]["rss_before_mb"] > 0
    _check(store_scale.figures(r), {"5 store"})


def test_ray_slots_figures() -> None:
    """The 32-slot benchmark's figures (its run is tests/integration/test_cluster.py's
    lost-node test at a smaller size: a second multi-node Ray here would cost a minute)."""
    def width(jobs: int) -> dict[str, float]:
        return {"jobs": jobs, "scheduling_ms": 90.0, "between_ms": 40.0, "startup_s": 2.0,
                "cpu_ms": 12.0}

    r = {"job_s": 2.0, "widths": {4: width(16), 16: width(64), 32: width(128)},
         "lost": {"distinct": 128, "jobs": 128, "rows": 128, "rescheduled": 3, "failed": 0}}
    figs = ray_slots.figures(r)
    _check(figs, {"scale"})
    assert [f.met for f in figs if f.goal] == [True]  # 32 vs 4 slots, CPU per job
    assert "a node lost" in figs[-1].name and figs[-1].value == figs[-1].ref == 128
    assert "custom: {lane2: 1}" in ray_slots.grid_text("x", 2, 1, 0.1, "lane2")
