"""The scheduling core on a simulated cluster and clock (no Ray, no sleeping): splits by
time, every job ends exactly once through worker crashes and node loss."""

from __future__ import annotations

from collections import deque

from llem.scheduler.core import CoreGroup, split_gain
from llem.scheduler.placement import Need
from llem.scheduler.sim import Workload, simulate, workload

ONE = Need((("GPU", 1.0),), 1)


def test_a_split_pays_when_the_work_left_per_worker_outlasts_a_load() -> None:
    g = CoreGroup(0, ONE, "noop", deque(range(16)), workers=1, job_s=30.0, load_s=60.0)
    assert split_gain(g, 2.0) > 0  # 16 x 30 s left on one worker >> a 62 s start and load
    g.jobs = deque(range(2))
    assert split_gain(g, 2.0) == 0  # 60 s left: a second load would not finish it sooner
    g.job_s = None  # untimed: a free GPU takes it once each worker keeps 2 jobs
    g.jobs = deque(range(4))
    assert split_gain(g, 2.0) > 0


def test_two_gpus_sixteen_jobs_use_both() -> None:
    wl = Workload([("n", {"GPU": 2.0, "CPU": 8.0})],
                  [CoreGroup(0, ONE, "noop", deque(range(16)))], [30.0] * 16, {0: 20.0},
                  {0: None})
    bound = wl.bound()[0]
    r = simulate(wl)
    assert r.loads == 2
    assert r.makespan_s <= 1.1 * bound


def test_every_job_ends_once_through_crashes_and_node_loss() -> None:
    wl = workload(64, seed=3)
    r = simulate(wl, losses=3, crash_p=0.01, seed=3, retries=1)
    assert r.jobs == len(wl.duration)  # simulate asserts each job ended exactly once
    assert r.rescheduled > 0
    assert r.makespan_s >= r.bound_s


def test_a_split_goes_to_the_largest_gain_among_many_running_groups() -> None:
    """The driver hands next_start plain lists (ranked there); the core its heaps: both
    pick the group one more worker shortens most, also past the first SCAN groups."""
    from llem.scheduler.decide import SCAN, next_start
    from llem.scheduler.placement import Books

    books = Books.from_nodes([{"node_id": "n", "resources": {"GPU": 2.0, "CPU": 8.0}}])
    assert books.place(ONE) == "n"
    small = [CoreGroup(i, ONE, "noop", deque(range(4)), workers=1, job_s=30.0, load_s=5.0)
             for i in range(3 * SCAN)]
    big = CoreGroup(99, ONE, "noop", deque(range(40)), workers=1, job_s=30.0, load_s=5.0)
    pick = next_start([], {ONE: [*small, big]}, books, lambda g: False)
    assert pick == (big, True)


def test_the_core_decides_as_often_per_job_at_64_and_1024_gpus(monkeypatch) -> None:
    """Per-event work is bounded by the needs, not the GPUs or groups: the decisions asked
    of each group (split_gain, remaining, lpt_key) per job stay within 1.5x from 64 to
    1,024 GPUs (about 6 on seed 2); a scan over every running group at each event would
    grow with the groups. Counted, not timed (the CPU figures are benchmarks.scale's)."""
    import llem.scheduler.core as core
    import llem.scheduler.decide as decide

    calls = [0]
    for name in ("split_gain", "remaining", "lpt_key"):
        f = getattr(decide, name)

        def counted(*a, _f=f, **k):
            calls[0] += 1
            return _f(*a, **k)
        monkeypatch.setattr(decide, name, counted)
        if hasattr(core, name):
            monkeypatch.setattr(core, name, counted)
    per_job = []
    for gpus in (64, 1024):
        calls[0] = 0
        r = simulate(workload(gpus, seed=2), seed=2)
        per_job.append(calls[0] / r.jobs)
    assert per_job[0] > 1 and per_job[1] < 1.5 * per_job[0], per_job


def test_a_fault_is_requeued_retried_or_failed_as_in_the_driver() -> None:
    """decide.fault is what both the Ray driver and the simulator's core ask."""
    from llem.scheduler.decide import fault

    assert fault(0, 2, node_lost=True) == "requeue"  # no attempt counted for a lost node
    assert [fault(n, 2, node_lost=False) for n in (1, 2, 3)] == ["retry", "retry", "fail"]
    assert fault(1, 0, node_lost=False) == "fail"


def test_a_lost_node_sends_back_exactly_the_jobs_its_workers_held() -> None:
    """Workers are indexed by node: losing one node requeues its running jobs (first in
    their groups) and touches no other node's workers."""
    from llem.scheduler.core import SchedulerCore, Send, Start
    from llem.scheduler.placement import Books

    books = Books.from_nodes([{"node_id": n, "resources": {"GPU": 2.0, "CPU": 8.0}}
                              for n in ("a", "b")])
    core = SchedulerCore(books)
    groups = [CoreGroup(i, ONE, "noop", deque(range(10 * i, 10 * i + 10))) for i in range(4)]
    starts = [d for d in core.add_groups(groups) if isinstance(d, Start)]
    assert len(starts) == 4 and {d.node for d in starts} == {"a", "b"}
    sent = {d.worker: d.job for s in starts for d in core.worker_started(s.worker)
            if isinstance(d, Send)}
    on_a = {s.worker for s in starts if s.node == "a"}
    core.node_lost("a")
    back = {core.groups[s.group].jobs[0] for s in starts if s.node == "a"}
    assert back == {sent[w] for w in on_a}
    assert all(w.node == "b" for w in core.workers.values())


def test_a_node_is_drained_for_a_wide_group_that_no_node_has_room_for() -> None:
    """A 1-GPU group spread over both nodes would keep every GPU until its last job; the
    4-GPU group added later gets the node kept for it as its workers there finish a job."""
    from llem.scheduler.core import SchedulerCore, Send, Start
    from llem.scheduler.placement import Books

    books = Books.from_nodes([{"node_id": n, "resources": {"GPU": 4.0}} for n in ("a", "b")])
    core = SchedulerCore(books)
    wide = Need((("GPU", 4.0),), 4)
    starts = [d for d in core.add_groups([CoreGroup(0, ONE, "noop", deque(range(400)))])
              if isinstance(d, Start)]
    assert len(starts) == 8
    sent = {d.worker: d.job for s in starts for d in core.worker_started(s.worker)
            if isinstance(d, Send)}
    out = core.add_groups([CoreGroup(1, wide, "noop", deque(range(40, 80)))])
    assert not any(isinstance(d, Start) for d in out)
    kept = next(iter(books.held))
    for s in starts:
        out += core.job_finished(s.worker, sent[s.worker], 30.0)
    wide_starts = [d for d in out if isinstance(d, Start) and d.group == 1]
    assert [d.node for d in wide_starts] == [kept]
    on_kept = {s.worker for s in starts if s.node == kept}
    assert not any(isinstance(d, Send) and d.worker in on_kept for d in out)
    assert core.groups[0].workers == 4
