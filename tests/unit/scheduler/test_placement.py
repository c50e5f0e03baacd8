"""One "can this job ever be placed" check (placement.never_placed) behind both the dry run
(scheduler.plan, with memory estimates) and the driver (Books, Ray's resource totals): the
two can no longer disagree on custom resources, accelerator types, GPU or CPU counts."""

from __future__ import annotations

import pytest

from llem.config.models import Point, Resources
from llem.scheduler.placement import Books, Need, never_placed
from llem.scheduler.plan import Node, place

GIB = 2**30
# one node of 2 x L4 (24 GiB) with a custom resource, one CPU-only node
NODES = [Node("gpu-node", 2, [24 * GIB, 24 * GIB], ["NVIDIA L4", "NVIDIA L4"], 16.0, "L4",
              {"fast": 2.0}),
         Node("cpu-node", 0, [], [], 4.0)]
RAY = [{"node_id": "gpu-node", "resources": {"GPU": 2.0, "CPU": 16.0, "fast": 2.0,
                                             "accelerator_type:L4": 1.0}},
       {"node_id": "cpu-node", "resources": {"CPU": 4.0}}]


def _point(**res: object) -> Point:
    return Point(backend="noop", model="m", resources=Resources.model_validate(res))


@pytest.mark.parametrize(("res", "why"), [
    ({"gpus_per_job": 1}, None),
    ({"gpus_per_job": 2, "custom": {"fast": 2}}, None),
    ({"gpus_per_job": 3}, "needs 3 GPUs on one node; the largest node has 2"),
    ({"gpus_per_job": 1, "accelerator_type": "H100"}, "needs accelerator_type H100; no node "
                                                       "has one"),
    ({"gpus_per_job": 1, "custom": {"slow": 1}}, "needs 1 custom resource slow; the largest "
                                                  "node has 0"),
    ({"gpus_per_job": 1, "custom": {"fast": 3}}, "needs 3 custom resource fast; the largest "
                                                  "node has 2"),
    ({"gpus_per_job": 0, "cpus_per_job": 32}, "needs 32 CPUs; the largest node has 16"),
])
def test_dry_run_and_driver_give_the_same_answer(res: dict[str, object], why: str | None) -> None:
    p = _point(**res)
    books = Books.from_nodes(RAY)
    assert place(p, None, NODES) == why  # the dry run
    assert never_placed(Need.of(p.resources), books.views()) == why  # the driver
    assert books.feasible(Need.of(p.resources)) == (why is None)


def test_memory_is_checked_where_it_is_known() -> None:
    p = _point(gpus_per_job=1)
    assert place(p, 20 * GIB, NODES) is None
    assert place(p, 30 * GIB, NODES) == "needs 30.00 GiB per GPU; the largest GPU has 24.00 GiB"
    # a node whose GPU memory was not probed (the driver's view) is not refused for memory
    assert never_placed(Need.of(p.resources), Books.from_nodes(RAY).views(), 30 * GIB) is None


def test_no_single_node_with_all_of_a_job_needs() -> None:
    nodes = [{"node_id": "a", "resources": {"GPU": 2.0, "CPU": 4.0}},
             {"node_id": "b", "resources": {"CPU": 4.0, "fast": 1.0}}]
    need = Need.of(Resources(gpus_per_job=1, custom={"fast": 1}))
    assert never_placed(need, Books.from_nodes(nodes).views()) == \
        "needs 1 GPUs, fast 1 on one node; no node has all of them"


def test_lost_nodes_do_not_count() -> None:
    books = Books.from_nodes(RAY)
    books.lose("gpu-node")
    assert never_placed(Need.of(Resources(gpus_per_job=1)), books.views()) == \
        "needs 1 GPU on one node; the cluster has no GPU"


def test_a_kept_node_takes_only_the_need_it_is_kept_for() -> None:
    """Books.reserve keeps the node of most free GPUs for one need (the core drains it for
    a wide group); other needs go elsewhere or wait, and the hold ends once it is placed."""
    one, four = Need((("GPU", 1.0),), 1), Need((("GPU", 4.0),), 4)
    books = Books.from_nodes([{"node_id": n, "resources": {"GPU": 4.0}} for n in "ab"])
    assert books.place(one, "a") == "a" and books.place(one, "b") == "b"
    assert books.place(one, "b") == "b"  # a: 3 free, b: 2 free
    assert books.reserve(four) == "a"
    assert books.place(one) == "b" and books.place(one) == "b"
    assert books.place(one) is None and books.place(one, "a") is None  # a: 3 free, kept
    assert not books.can_place(four)
    books.release("a", one)
    assert books.place(four) == "a" and not books.held  # placed: no longer kept
    assert books.reserve(four, skip=lambda node: True) is None
    assert books.reserve(four) == "b"
    books.lose("b")
    assert not books.held


def test_scarcity_is_all_gpus_over_those_that_can_run_the_need() -> None:
    """The weight next_start gives a waiting group's length (the driver's and the core's):
    8 H100 + 4 A100 GPUs; a group tied to the A100s is 3x scarcer; it follows lost and added
    nodes (the cache is cleared)."""
    books = Books.from_nodes([
        {"node_id": "h", "resources": {"GPU": 8.0, "accelerator_type:H100": 1.0}},
        {"node_id": "a", "resources": {"GPU": 4.0, "accelerator_type:A100": 1.0}}])
    untied = Need.of(Resources(gpus_per_job=1))
    a100 = Need.of(Resources(gpus_per_job=1, accelerator_type="A100"))
    wide = Need.of(Resources(gpus_per_job=8))
    assert (books.scarcity(untied), books.scarcity(a100), books.scarcity(wide)) == (1.0, 3.0,
                                                                                    1.5)
    books.lose("h")
    assert (books.scarcity(a100), books.scarcity(wide)) == (1.0, 1.0)  # none can: 1.0
    books.add("a2", {"GPU": 4.0, "accelerator_type:A100": 1.0})
    books.add("h2", {"GPU": 8.0, "accelerator_type:H100": 1.0})
    assert books.scarcity(a100) == 2.0
