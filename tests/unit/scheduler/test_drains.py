"""llem.scheduler.drains: a node is kept for a starved wide group only where the workers of
other groups can all leave it (a group's last worker stays), and a worker there leaves its
group, between two jobs, only while that group one worker short still ends first. The
groups here are the core's (CoreGroup); the driver hands its GroupRuns the same way."""

from __future__ import annotations

from collections import deque

from llem.scheduler.core import CoreGroup
from llem.scheduler.drains import Drains
from llem.scheduler.placement import Books, Need

ONE = Need((("GPU", 1.0),), 1)
TWO = Need((("GPU", 2.0),), 2)


def _books(on: dict[str, list[CoreGroup]]) -> Books:
    """Nodes of 2 GPUs, each group's workers placed on them as on says."""
    books = Books.from_nodes([{"node_id": x, "resources": {"GPU": 2.0}} for x in on])
    for node, gs in on.items():
        for g in gs:
            assert books.place(g.need, node) == node
    return books


def test_a_node_is_kept_only_where_every_other_worker_can_leave() -> None:
    n = CoreGroup(0, ONE, "noop", deque(range(40)), workers=3, job_s=1.0)
    on = {"a": [n, n], "b": [n]}  # b: one GPU free
    drains = Drains(_books(on), lambda node: on[node])
    assert drains.drainable("a", TWO)  # n keeps a worker on b: both on a can go
    assert drains.drainable("b", TWO)  # b's free GPU and n's worker there
    n.workers = 2  # n's 2 workers both on a: its last one stays
    on["b"] = []
    assert not drains.drainable("a", TWO)
    assert not drains.drainable("b", TWO)  # one GPU free, no worker that may leave


def test_the_starved_group_gets_a_node_and_workers_leave_it_between_jobs() -> None:
    n = CoreGroup(0, ONE, "noop", deque(range(40)), workers=4, job_s=1.0)
    w = CoreGroup(1, TWO, "noop", deque(range(8)), job_s=10.0)
    on = {"a": [n, n], "b": [n, n]}
    books = _books(on)
    drains = Drains(books, lambda node: on[node])
    drains.keep([w], {}, 1, lambda need: frozenset())
    assert drains.starved == {TWO: w}
    kept = next(iter(books.held))
    assert books.held == {kept: TWO} and not books.can_place(ONE)
    # n one worker short (40 jobs of 1 s on 3 workers) ends before w (no worker yet)
    assert drains.evict(kept, n)
    assert not drains.evict(kept, w)  # the kept node's own need never leaves
    other = "b" if kept == "a" else "a"
    assert not drains.evict(other, n)  # a node not kept: nobody leaves
    n.workers = 1
    assert not drains.evict(kept, n)  # a group's last worker stays
    n.workers, w.workers = 4, 1
    n.jobs.extend(range(40, 400))  # n one short would now end after w: it stays
    assert not drains.evict(kept, n)
    w.jobs.clear()  # w needs no node any more: the node is given back
    w.workers = 0
    drains.keep([], {}, 1, lambda need: frozenset())
    assert drains.starved == {} and books.held == {}
