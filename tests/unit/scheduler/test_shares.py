"""llem.scheduler.shares: the GPUs of a type that its tied groups need to finish with the
rest are kept from untied workers; the rest of the type is open to them."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from llem.scheduler.core import CoreGroup, SchedulerCore, Start
from llem.scheduler.placement import ACCEL_PREFIX, Books, Need
from llem.scheduler.shares import Shares, alive_gpus, tied_to

ONE = Need((("GPU", 1.0),), 1)
A100 = Need((("GPU", 1.0), (ACCEL_PREFIX + "A100", 0.001)), 1)
GPUS = {"H100": 8.0, "A100": 4.0}


def _shares(groups: Sequence[CoreGroup]) -> Shares:
    s = Shares()
    for g in groups:
        s.touch(g.gid, g)
    return s


def _group(gid: int, need: Need, jobs: int) -> CoreGroup:
    return CoreGroup(gid, need, "noop", deque(range(jobs)), job_s=30.0)


def test_untied_workers_keep_off_a_type_its_tied_groups_need_whole() -> None:
    # A100-tied work fills the 4 A100s for as long as the rest fills the 8 H100s
    s = _shares([_group(0, A100, 40), _group(1, ONE, 80)])
    assert tied_to(A100) == "A100" and tied_to(ONE) is None
    assert s.avoid(ONE, GPUS) == {"A100"}
    assert s.avoid(A100, GPUS) == frozenset()  # a tied group is never kept off its type


def test_the_rest_of_a_type_is_open_to_untied_workers() -> None:
    s = _shares([_group(0, A100, 10), _group(1, ONE, 110)])  # A100 work: 1 of 4 GPUs
    assert s.avoid(ONE, GPUS) == frozenset()
    s.hold("A100", ONE, 1)
    s.hold("A100", ONE, 1)
    assert s.avoid(ONE, GPUS) == frozenset()  # 3 of the 4 open to untied workers
    s.hold("A100", ONE, 1)
    assert s.avoid(ONE, GPUS) == {"A100"}
    s.hold("A100", ONE, -1)
    assert s.avoid(ONE, GPUS) == frozenset()


def test_the_core_starts_tied_groups_on_their_scarce_type() -> None:
    """Untied groups, longer and so started first, would take every A100 (the tightest
    fit); the core leaves the A100-tied groups the two A100s their work needs."""
    books = Books.from_nodes([
        {"node_id": "h", "resources": {"GPU": 8.0, ACCEL_PREFIX + "H100": 1.0}},
        {"node_id": "a", "resources": {"GPU": 4.0, ACCEL_PREFIX + "A100": 1.0}}])
    untied = [_group(i, ONE, 50) for i in range(12)]
    tied = [_group(20 + i, A100, 15) for i in range(8)]  # 1/6 of the work, 1/3 of the GPUs
    for g in untied + tied:
        g.job_s = None
    starts = [d for d in SchedulerCore(books).add_groups(untied + tied)
              if isinstance(d, Start)]
    assert sum(1 for d in starts if d.node == "a" and d.group >= 20) == 2


def test_nothing_is_kept_where_all_gpus_are_of_one_type() -> None:
    """An untied worker kept off the only type would leave its GPU idle (8 simulated
    GPUs, seed 1: a GPU idled for 640 s while a 4-GPU H100 group could not use it)."""
    h100 = Need((("GPU", 4.0), (ACCEL_PREFIX + "H100", 0.001)), 4)
    s = _shares([_group(0, h100, 40), _group(1, ONE, 10)])
    assert s.avoid(ONE, {"H100": 8.0}) == frozenset()
    assert s.avoid(ONE, {"H100": 8.0, None: 4.0}) == {"H100"}


def test_the_driver_counts_alive_gpus_and_holds_per_node_as_the_core_does() -> None:
    """The driver's Shares: alive GPUs per type from its books (a lost node no longer
    counts), a worker's GPUs held on its node's type, and off() as avoid over them."""
    books = Books.from_nodes([
        {"node_id": "h", "resources": {"GPU": 8.0, ACCEL_PREFIX + "H100": 1.0}},
        {"node_id": "a", "resources": {"GPU": 4.0, ACCEL_PREFIX + "A100": 1.0}},
        {"node_id": "c", "resources": {"GPU": 2.0, "node:c": 1.0}}])
    assert alive_gpus(books) == {"H100": 8.0, "A100": 4.0, None: 2.0}
    books.lose("c")
    s = _shares([_group(0, A100, 10), _group(1, ONE, 110)])
    s.gpus = alive_gpus(books)
    assert s.gpus == GPUS
    for _ in range(3):
        s.hold_at(books, "a", ONE, 1)
    assert s.untied == {"A100": 3.0} and s.off(ONE) == {"A100"} == s.avoid(ONE, GPUS)
    s.hold_at(books, "a", ONE, -1)
    s.hold_at(books, "h", A100, 1)  # a tied worker is not counted
    assert s.untied == {"A100": 2.0} and s.off(ONE) == frozenset()
