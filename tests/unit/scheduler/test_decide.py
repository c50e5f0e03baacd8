"""llem.scheduler.decide: a free GPU goes to the group that would finish last (not the one
a split gains most seconds), a single job is split off when that finishes sooner, and nodes
are drained for one wide group per kind of node."""

from __future__ import annotations

from collections import deque

from llem.config.models import Scheduling
from llem.scheduler.core import CoreGroup
from llem.scheduler.decide import next_start, remaining, split_gain, starved
from llem.scheduler.placement import ACCEL_PREFIX, Books, Need

ONE = Need((("GPU", 1.0),), 1)
FOUR = Need((("GPU", 4.0),), 4)


def _group(gid: int, need: Need, jobs: int, workers: int, job_s: float | None = 30.0,
           load_s: float = 5.0) -> CoreGroup:
    return CoreGroup(gid, need, "noop", deque(range(jobs)), workers=workers, job_s=job_s,
                     load_s=load_s)


def test_a_free_gpu_goes_to_the_group_that_would_finish_last() -> None:
    """Ranked by split gain, worker counts grow as the square root of the work (a group's
    gain is its work over w(w+1)): the long group lags and ends the campaign alone."""
    books = Books.from_nodes([{"node_id": "n", "resources": {"GPU": 12.0}}])
    for _ in range(11):
        books.place(ONE)
    long = _group(0, ONE, 200, workers=10)  # 630 s to go on 10 workers
    short = _group(1, ONE, 10, workers=1)  # 330 s to go on 1
    assert split_gain(short, 2.0) > split_gain(long, 2.0)
    assert remaining(long) > remaining(short)
    assert next_start([], {ONE: [short, long]}, books, lambda g: False) == (long, True)


def test_a_single_job_is_split_off_when_that_finishes_sooner() -> None:
    g = _group(0, ONE, 2, workers=1, job_s=300.0, load_s=10.0)
    assert split_gain(g, 2.0, min_jobs=1) > 0  # 600 s on one worker; 312 s with a second
    assert split_gain(g, 2.0, min_jobs=2) == 0
    assert Scheduling().split_min_jobs == 1


def test_one_wide_group_a_kind_of_node_is_starved() -> None:
    """A wide waiting group no node has room for comes first; then, per kind of node, the
    running wide group that would finish last; needs with room now are not starved."""
    a100 = Need((("GPU", 4.0), (ACCEL_PREFIX + "A100", 0.001)), 4)
    h100 = Need((("GPU", 4.0), (ACCEL_PREFIX + "H100", 0.001)), 4)
    books = Books.from_nodes([
        {"node_id": "h", "resources": {"GPU": 8.0, ACCEL_PREFIX + "H100": 1.0}},
        {"node_id": "a", "resources": {"GPU": 4.0, ACCEL_PREFIX + "A100": 1.0}}])
    books.place(ONE, "h")
    books.place(ONE, "h")
    books.place(ONE, "h")
    books.place(ONE, "h")
    books.place(ONE, "h")  # h: 3 free
    books.place(ONE, "a")  # a: 3 free
    on_h = _group(0, h100, 40, workers=1)
    on_a = _group(1, a100, 40, workers=1)
    longer = _group(2, a100, 80, workers=1)
    assert starved([], {h100: [on_h], a100: [on_a]}, books) == [on_h, on_a]
    assert starved([], {h100: [on_h], a100: [longer]}, books) == [longer, on_h]
    # an untied waiting group can run on either kind: it is the one for both
    waiting = _group(3, FOUR, 2, workers=0)
    assert starved([waiting], {h100: [on_h], a100: [on_a]}, books) == [waiting]
    books.release("h", ONE)
    assert starved([], {h100: [on_h], a100: [on_a]}, books) == [on_a]  # h has room now


def test_waiting_groups_go_by_order_then_a_held_model_then_length() -> None:
    """The driver's preference among waiting groups (order: its waves, when cycles
    interleave): an earlier wave before a longer group an idle worker holds; within a wave,
    a group whose model an idle worker holds (2) before one it must load (1), before the
    longest one that needs a new process (0)."""
    books = Books.from_nodes([{"node_id": "n", "resources": {"GPU": 2.0}}])
    early, held, loads, longest = (_group(i, ONE, n, workers=0) for i, n in
                                   enumerate((2, 3, 4, 50)))
    wave = {early.gid: (0,), held.gid: (-1,), loads.gid: (-1,), longest.gid: (-1,)}
    score = {early.gid: 0, held.gid: 2, loads.gid: 1, longest.gid: 0}

    def pick(*gs: CoreGroup) -> object:
        got = next_start(list(gs), {}, books, lambda g: score[g.gid],
                         order=lambda g: wave[g.gid])
        return got and got[0]

    assert pick(early, held, loads, longest) is early
    assert pick(held, loads, longest) is held
    assert pick(loads, longest) is loads
    assert next_start([loads, longest], {}, books, lambda g: 0) == (longest, False)
