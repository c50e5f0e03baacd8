"""The dry run's plan counts the model loads each interleave costs, from the load groups."""

from __future__ import annotations

import pytest

from llem.config.load import load_text
from llem.scheduler.plan import Node, make_plan

NODE = [Node("n", 1, [80 * 2**30], ["H100"], 8.0)]


def plan(body: str, models: str = "[a, b]"):
    loaded = load_text(f"name: t\nmodels: {models}\nbackends: [noop]\n{body}"
                       "grid: {batch_size: [1, 2]}\nresources: {gpus_per_job: 1}\n", "g.yaml")
    return make_plan(loaded, NODE, lambda ds: None)


@pytest.mark.parametrize("body,models,loads,across,groups", [
    ("cycles: 3\n", "[a, b]", 6, 6, 2),                        # default: per group per cycle
    ("cycles: 3\ninterleave: within_group\n", "[a, b]", 2, 6, 2),
    ("cycles: 3\norder: sequential\n", "[a, b]", 2, 2, 2),     # nothing to interleave
    ("cycles: 3\norder: williams\n", "[a, b, c]", 9, 9, 3),
    ("cycles: 3\n", "[a]", 1, 1, 1),                           # one group: one load
    ("cycles: 1\n", "[a, b]", 2, 2, 2),
])
def test_model_loads_with_and_without_interleaving(body: str, models: str, loads: int,
                                                   across: int, groups: int) -> None:
    p = plan(body, models)
    assert len(p.groups) == groups  # the load groups, not the per-cycle queue entries
    assert (p.model_loads, p.loads_across) == (loads, across)
    assert p.jobs == len(p.points) * p.cycles and len(p.points) == 2 * groups
