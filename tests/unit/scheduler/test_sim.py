"""llem.scheduler.sim: the lower bound counts the model loads any run must pay (a group whose
jobs outlast one worker's time needs more workers, each loading the model), never more than
a run achieves."""

from __future__ import annotations

from collections import deque

import pytest

from llem.scheduler.core import START_S, CoreGroup
from llem.scheduler.placement import Need
from llem.scheduler.sim import Workload, simulate, workload

ONE = Need((("GPU", 1.0),), 1)


def test_the_bound_counts_the_loads_of_the_workers_a_group_needs() -> None:
    """4 jobs of 100 s and a 50 s load on 2 GPUs: the plain bound (450 GPU-s over 2 GPUs,
    225 s) lets one worker do it all; one worker would need 452 s, so any run of less
    has two workers, two loads: 500 GPU-s after the first start, 252 s; the best run
    (2 jobs a worker) takes exactly that."""
    wl = Workload([("n", {"GPU": 2.0, "CPU": 8.0})],
                  [CoreGroup(0, ONE, "noop", deque(range(4)))], [100.0] * 4, {0: 50.0},
                  {0: None})
    bound, work, chain = wl.bound()
    assert wl.plain_work() == pytest.approx(225.0)
    assert chain == pytest.approx(START_S + 150.0)
    assert bound == work == pytest.approx(START_S + 250.0, abs=0.02)
    assert simulate(wl).makespan_s == pytest.approx(bound, abs=0.02)


@pytest.mark.parametrize(("gpus", "seed"), [(8, 4), (64, 2), (64, 5), (1024, 2)])
def test_no_run_beats_the_bound(gpus: int, seed: int) -> None:
    wl = workload(gpus, seed=seed)
    plain = wl.plain_work()
    r = simulate(wl, seed=seed)
    assert plain <= r.spread_s <= r.bound_s <= r.makespan_s
