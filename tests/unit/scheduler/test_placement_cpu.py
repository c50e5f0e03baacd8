"""CPU-measured jobs (gpus_per_job 0) share a node's cores and RAPL package, so the books let
a node run scheduling.cpu_jobs_per_node of them at once (default one), whatever CPUs it has
free; GPU jobs beside them are not held back."""

from __future__ import annotations

from collections import deque

import pytest
from pydantic import ValidationError

from llem.config.models import Resources, Scheduling
from llem.scheduler.core import CoreGroup, SchedulerCore, Send, Start
from llem.scheduler.placement import Books, Need

CPU = Need.of(Resources(gpus_per_job=0, cpus_per_job=1))
GPU = Need.of(Resources(gpus_per_job=1))
BIG = [{"node_id": "big", "resources": {"CPU": 64.0, "GPU": 2.0}}]


def test_one_cpu_job_per_node_by_default_though_cores_are_free() -> None:
    books = Books.of(BIG, Scheduling())
    assert books.cpu_jobs == 1
    assert books.place(CPU) == "big"
    assert books.nodes["big"].free["CPU"] == 63.0  # 63 CPUs free, still no second CPU job
    assert not books.can_place(CPU) and books.place(CPU) is None
    assert books.place(GPU) == "big"  # a GPU job is not a CPU-measured one
    books.release("big", CPU)
    assert books.place(CPU) == "big"


def test_the_setting_allows_more_and_each_release_frees_one() -> None:
    books = Books.of(BIG, Scheduling(cpu_jobs_per_node=2))
    assert [books.place(CPU), books.place(CPU), books.place(CPU)] == ["big", "big", None]
    books.release("big", GPU)  # a GPU release does not free a CPU-job slot
    assert books.place(CPU) is None
    books.release("big", CPU)
    assert books.place(CPU) == "big" and books.nodes["big"].cpu_workers == 2


def test_a_second_cpu_job_goes_to_another_node() -> None:
    books = Books.from_nodes([{"node_id": "a", "resources": {"CPU": 8.0}},
                              {"node_id": "b", "resources": {"CPU": 8.0}}])
    first = books.place(CPU)
    second = books.place(CPU, prefer=first)  # its preferred node has no slot left
    assert {first, second} == {"a", "b"} and books.place(CPU) is None
    assert books.feasible(CPU)  # busy, not impossible: the driver waits, it does not refuse


def test_the_setting_is_validated() -> None:
    assert Scheduling().cpu_jobs_per_node == 1
    with pytest.raises(ValidationError, match="cpu_jobs_per_node"):
        Scheduling(cpu_jobs_per_node=0)


def _run(cpu_jobs: int) -> list[tuple[str, int]]:
    """Two CPU groups of two jobs on one 8-CPU node through the scheduling core: the
    (event, group) sequence of starts and finishes."""
    core = SchedulerCore(Books.from_nodes([{"node_id": "n", "resources": {"CPU": 8.0}}],
                                          cpu_jobs=cpu_jobs))
    groups = [CoreGroup(0, CPU, "noop", deque([0, 1])), CoreGroup(1, CPU, "noop",
                                                                   deque([2, 3]))]
    seen: list[tuple[str, int]] = []
    todo = list(core.add_groups(groups))
    while todo:
        d = todo.pop(0)
        if isinstance(d, Start):
            seen.append(("start", d.group))
            todo += [] if d.reuse else core.worker_started(d.worker)
        elif isinstance(d, Send):
            gid = core.workers[d.worker].group.gid
            todo += core.job_finished(d.worker, d.job, 10.0)
            seen.append(("finish", gid))
    return seen


def test_the_core_starts_the_second_cpu_group_only_after_the_first() -> None:
    one = _run(1)
    assert [e for e, _ in one].count("start") == 2
    first = one[0][1]
    assert one[:3] == [("start", first), ("finish", first), ("finish", first)]
    assert one[3][0] == "start" and one[3][1] != first
    two = _run(2)
    assert [e for e, _ in two[:2]] == ["start", "start"]  # both groups at once
