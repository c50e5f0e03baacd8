"""benchmarks.makespan_oracle: the offline plan it builds is checked (no GPU runs two workers
at once, every job once, each worker on its group's GPUs, a reused process only where one is
idle), and its makespan is never below llem.scheduler.sim.Workload.bound."""

from __future__ import annotations

import dataclasses
from collections import deque

import pytest

from benchmarks.makespan_oracle import Worker, oracle, pack, validate
from benchmarks.makespan_plan import execute, means, redraw
from llem.scheduler.core import START_S, CoreGroup
from llem.scheduler.placement import Need
from llem.scheduler.sim import Workload, workload

ONE = Need((("GPU", 1.0),), 1)


def two_gpus(jobs: int) -> Workload:
    return Workload([("n", {"GPU": 2.0, "CPU": 8.0})],
                    [CoreGroup(0, ONE, "noop", deque(range(jobs)))], [100.0] * jobs,
                    {0: 50.0}, {0: None})


def test_the_plan_of_a_small_workload_meets_the_bound() -> None:
    """4 jobs of 100 s, a 50 s load, 2 GPUs: two workers of 2 jobs, START_S + 250 s, which
    is the bound."""
    wl = two_gpus(4)
    made, plan, _ = oracle(wl)
    assert made == pytest.approx(START_S + 250.0, abs=0.6)
    assert made >= wl.bound()[0] - 0.01
    assert sorted(len(w.jobs) for w in plan) == [2, 2]
    assert {w.gpus for w in plan} == {(0,), (1,)}


def test_whole_jobs_keep_a_plan_above_a_bound_that_splits_them() -> None:
    """3 jobs of 100 s: the bound splits the work over two workers (START_S + 200 s); whole
    jobs need START_S + 250 s (one worker runs two of them)."""
    wl = two_gpus(3)
    made, _, _ = oracle(wl)
    assert wl.bound()[0] == pytest.approx(START_S + 200.0, abs=0.02)
    assert made == pytest.approx(START_S + 250.0, abs=0.01)
    assert pack(wl, START_S + 249.0) is None


def test_the_validator_rejects_what_no_cluster_can_run() -> None:
    wl = two_gpus(4)
    _, plan, _ = oracle(wl)
    assert validate(wl, plan) == pytest.approx(START_S + 250.0, abs=0.6)
    a, b = sorted(plan, key=lambda w: w.gpus)
    with pytest.raises(ValueError, match="overlap"):
        validate(wl, [a, dataclasses.replace(b, gpus=a.gpus)])
    with pytest.raises(ValueError, match="run twice"):
        validate(wl, [a, dataclasses.replace(b, jobs=b.jobs + a.jobs[:1])])
    with pytest.raises(ValueError, match="never run"):
        validate(wl, [a, dataclasses.replace(b, jobs=b.jobs[:1])])
    with pytest.raises(ValueError, match="reuses a process"):
        validate(wl, [a, dataclasses.replace(b, fresh=False)])
    with pytest.raises(ValueError, match="not 1 of its node"):
        validate(wl, [a, dataclasses.replace(b, gpus=(2,))])
    later = Worker(a.node, a.gpus, validate(wl, [a, b]), 0, b.jobs, False)
    assert validate(wl, [a, later]) > validate(wl, [a, b])  # a's process, idle, reused


def test_the_oracle_on_a_simulated_cluster_is_valid_and_above_the_bound() -> None:
    """64 GPUs (H100 and A100 nodes, groups 1-8 GPUs wide, some tied to a type)."""
    wl = workload(64, seed=1)
    made, plan, _ = oracle(wl)
    bound = wl.bound()[0]
    assert bound <= made <= 1.03 * bound
    assert validate(wl, plan) == made
    a100 = {i for i, (_, r) in enumerate(wl.nodes) if r["GPU"] == 4.0}
    tied = next(w for w in plan if wl.accel[w.gid] == "H100" and len(w.gpus) <= 4)
    with pytest.raises(ValueError, match="tied to H100"):
        validate(wl, [dataclasses.replace(w, node=min(a100), gpus=tuple(range(len(w.gpus))))
                      if w is tied else w for w in plan])


def test_a_plan_from_means_is_repaired_online_and_stays_valid() -> None:
    """benchmarks.makespan_plan: 6 jobs of one group planned at their mean (66.7 s) on 2
    GPUs, 3 a GPU; truly one of 300 s and five of 20 s. The GPU whose chain ends first takes
    the tail job of the other chain (same group: no load): START_S + 50 + 300 + 20, where
    the plan as made would end at START_S + 50 + 300 + 40."""
    true = two_gpus(6)
    true.duration[:] = [300.0] + [20.0] * 5
    est = means(true)
    _, plan, _ = oracle(est)
    assert sorted(len(w.jobs) for w in plan) == [3, 3]
    for pooled in (True, False):
        made, done, taken = execute(true, plan, est.duration, pooled)
        assert made == pytest.approx(START_S + 370.0)
        assert taken == 1 and validate(true, done) == made
        assert sorted(len(w.jobs) for w in done) == [2, 4]


def test_plans_from_means_and_from_exact_times_on_a_simulated_cluster() -> None:
    """64 GPUs: the plan from the means, executed with the true times, is valid, above the
    bound and above the exact plan; the exact plan executed with its own times ends no later
    than planned; a second cycle's draw keeps the groups and draws other times."""
    wl = workload(64, seed=1)
    bound = wl.bound()[0]
    made, exact, _ = oracle(wl)
    assert execute(wl, exact, wl.duration)[0] <= made + 1e-6
    est = means(wl)
    _, plan, _ = oracle(est)
    got, done, _ = execute(wl, plan, est.duration)
    assert made < got <= 1.10 * bound and validate(wl, done) == got
    two = redraw(64, 1, noise=7)
    assert [g.jobs for g in two.groups] == [g.jobs for g in wl.groups]
    assert two.duration != wl.duration and two.duration == redraw(64, 1, noise=7).duration
    assert execute(two, plan, est.duration)[0] >= two.bound()[0]
