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


def test_an_endpoint_is_planned_without_reading_its_models_config(monkeypatch) -> None:
    """The endpoint backend measures a server running elsewhere: the served name is not a
    model llem loads, so the dry run asks no hub for its config (offline: 25 s of retries)."""
    import llem.scheduler.plan as plan_mod

    def no_read(model: str) -> None:
        raise AssertionError(f"read the config of {model}")

    monkeypatch.setattr(plan_mod, "read_config", no_read)
    loaded = load_text("name: t\nmodels: [meta-llama/Llama-3.1-8B-Instruct]\n"
                       "backends: [endpoint]\ngrid: {mode: server}\n"
                       "endpoint: {base_url: 'http://127.0.0.1:9'}\n"
                       "server: {profile: concurrency, concurrency: 2, requests: 4}\n", "g.yaml")
    [p] = make_plan(loaded, NODE, lambda ds: None).points
    assert p.estimate is None and p.unknown == "the endpoint backend loads no model"
    assert p.unplaceable is None
