"""Which idle worker a waiting group goes to (llem.scheduler.pool.Pool.reusable/holds): the
one whose process holds the group's model already (a later cycle of its group: no load)
before one that can load it in its own process; none across backends or resource needs."""

from __future__ import annotations

from llem.config.grid import groups
from llem.config.models import Scheduling
from llem.scheduler.placement import Books, Need
from llem.scheduler.pool import Pool
from llem.scheduler.state import GroupRun, Summary, Worker
from tests.support.grids import load

GRID = """
name: t
models: [a, b]
backends: [noop]
cycles: 2
grid: {batch_size: [1, 2]}
experiments: [{model: c, batch_size: 1, resources: {gpus_per_job: 2}}]
resources: {gpus_per_job: 1}
"""


def test_an_idle_worker_holding_the_model_goes_first() -> None:
    runs = {(g.first.model, g.cycle): GroupRun.of(g, Need.of(g.first.resources), g.jobs())
            for g in groups(load(GRID, head=""))}
    books = Books.from_nodes([{"node_id": "n1", "resources": {"GPU": 4.0}}])
    pool = Pool("t", Scheduling(), {}, books, Summary(), None)
    holds_b = Worker(runs["b", 0], None, "n1", 0, None, 0.0)
    holds_a = Worker(runs["a", 0], None, "n1", 1, None, 0.0)
    pool.idle = [holds_b, holds_a]
    assert pool.reusable(runs["a", 1]) is holds_a and pool.holds(runs["a", 1]) == 2
    assert pool.reusable(runs["b", 1]) is holds_b and pool.holds(runs["b", 1]) == 2
    assert pool.holds(runs["b", 1], held=False) == 1  # alone: the plan's order decides
    pool.idle = [holds_b]  # a's model is held by nobody: b's process can load it
    assert pool.reusable(runs["a", 1]) is holds_b and pool.holds(runs["a", 1]) == 1
    assert pool.reusable(runs["a", 1], node="n2") is None
    assert pool.holds(runs["c", 0]) == 0  # 2 GPUs a job: another need, another worker
