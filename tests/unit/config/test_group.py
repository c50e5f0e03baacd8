"""Cycles across load groups: the groups the driver queues, their planned order, each job's
timeline_index, and the interleave / order keys as a user writes them."""

from __future__ import annotations

import pytest

from llem.config.grid import groups, iter_jobs, load_groups
from llem.config.group import planned
from llem.config.job import Job
from llem.config.load import load_text
from llem.config.loaded import Loaded
from llem.config.order import williams_row
from llem.errors import ConfigError

HEAD = "name: t\nmodels: [a, b]\nbackends: [noop]\ncycles: 3\n"


def load(body: str = "", head: str = HEAD) -> Loaded:
    return load_text(head + body + "grid: {batch_size: [1, 2, 4]}\n", "grid.yaml")


def timeline(loaded: Loaded) -> list[tuple[str, int, int]]:
    """(model, batch size, cycle) of every job in its planned order; the indices checked."""
    jobs = list(iter_jobs(loaded))
    assert [j.timeline_index for j in jobs] == list(range(len(jobs)))
    return [(j.point.model, j.point.batch_size, j.cycle) for j in jobs]


def blocks(loaded: Loaded) -> list[tuple[str, int]]:
    """(model, cycle) of each run of consecutive jobs: one model load each on one GPU."""
    out: list[tuple[str, int]] = []
    for model, _, cycle in timeline(loaded):
        if not out or out[-1] != (model, cycle):
            out.append((model, cycle))
    return out


def test_default_runs_cycle_zero_of_every_group_first() -> None:
    loaded = load()
    assert loaded.campaign.interleave == "groups"
    assert blocks(loaded) == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    gs = list(groups(loaded))
    assert [(g.first.model, list(g.cycles)) for g in gs] == \
        [("a", [0]), ("b", [0]), ("a", [1]), ("b", [1]), ("a", [2]), ("b", [2])]
    assert {g.size_hint for g in gs} == {3}  # one cycle's jobs each
    assert len({g.load_key for g in gs}) == 2  # still two loads: the same key every cycle
    assert len(list(load_groups(loaded))) == 2


def test_within_group_keeps_one_load_per_group() -> None:
    loaded = load("interleave: within_group\n")
    assert blocks(loaded) == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
    assert [list(g.cycles) for g in groups(loaded)] == [[0, 1, 2], [0, 1, 2]]
    # within a group, cycles interleave as before: every point of cycle 0, then cycle 1
    assert timeline(loaded)[:4] == [("a", 1, 0), ("a", 2, 0), ("a", 4, 0), ("a", 1, 1)]


def test_one_load_group_or_one_cycle_changes_nothing() -> None:
    one = load(head="name: t\nmodels: [a]\nbackends: [noop]\ncycles: 3\n")
    gs = list(groups(one))
    assert len(gs) == 1 and list(gs[0].cycles) == [0, 1, 2] and gs[0].cycle is None
    assert timeline(one) == timeline(load("interleave: within_group\n", head="name: t\n"
                                          "models: [a]\nbackends: [noop]\ncycles: 3\n"))
    single = load(head="name: t\nmodels: [a, b]\nbackends: [noop]\n")
    assert [g.cycle for g in groups(single)] == [None, None]


def test_sequential_runs_each_point_back_to_back_and_refuses_interleave_groups() -> None:
    loaded = load("order: sequential\n")
    assert timeline(loaded)[:4] == [("a", 1, 0), ("a", 1, 1), ("a", 1, 2), ("a", 2, 0)]
    assert blocks(loaded)[:1] == [("a", 0)] and len(list(groups(loaded))) == 2
    with pytest.raises(ConfigError) as exc:
        load("order: sequential\ninterleave: groups\n")
    msg = str(exc.value)
    assert "grid.yaml:6" in msg and "'interleave'" in msg and "sequential" in msg
    assert len(msg.splitlines()) == 1


@pytest.mark.parametrize("body,want", [
    ("interleave: cycles\n", "'interleave': must be 'groups' or 'within_group' (got 'cycles')"),
    ("order: latin\n", "'order': must be 'interleaved', 'sequential', 'shuffled' or "
                       "'williams' (got 'latin')"),
])
def test_bad_values_are_one_located_line(body: str, want: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load(body)
    assert str(exc.value).splitlines() == [f"grid.yaml:5: {want}"]


def test_williams_orders_points_and_groups_per_cycle() -> None:
    loaded = load("order: williams\n", head="name: t\nmodels: [a, b]\nbackends: [noop]\n"
                  "cycles: 4\n")
    jobs = timeline(loaded)
    for cycle in range(4):
        got = [b for m, b, c in jobs if c == cycle and m == "a"]
        assert got == [[1, 2, 4][i] for i in williams_row(3, cycle)]
        models = [m for m, _, c in jobs if c == cycle]
        assert models[::3] == [["a", "b"][i] for i in williams_row(2, cycle)]
    assert {j.order for j in iter_jobs(loaded)} == {"williams"}
    assert {j.order_seed for j in iter_jobs(loaded)} == {None}
    # within_group: the same rows per cycle, one group after the other
    within = timeline(load("order: williams\ninterleave: within_group\n"))
    assert [b for m, b, c in within if c == 1 and m == "b"] == \
        [[1, 2, 4][i] for i in williams_row(3, 1)]
    assert [m for m, _, _ in within] == ["a"] * 9 + ["b"] * 9


def test_shuffled_permutes_within_each_cycle_reproducibly() -> None:
    a, b = load("order: shuffled\nseed: 11\n"), load("order: shuffled\nseed: 11\n")
    assert timeline(a) == timeline(b)
    assert [c for _, _, c in timeline(a)] == sorted(c for _, _, c in timeline(a))  # by cycle
    orders = {tuple((m, bs) for m, bs, c in timeline(load(f"order: shuffled\nseed: {s}\n"))
                    if c == 0) for s in range(8)}
    assert len(orders) > 1  # the seed decides
    assert {j.order_seed for j in iter_jobs(a)} == {11}


def test_planned_orders_by_wave_slot_then_size_and_numbers_the_timeline() -> None:
    loaded = load_text("name: t\nmodels: [small, big]\nbackends: [noop]\ncycles: 2\n"
                       "grid: {batch_size: [1]}\n"
                       "experiments: [{model: big, batch_size: [2, 4]}]\n", "g.yaml")
    gs = planned(groups(loaded), lambda g: g.size_hint)
    # longest first inside each cycle (interleaved), cycle 0 before cycle 1
    assert [(g.first.model, g.cycle) for g in gs] == \
        [("big", 0), ("small", 0), ("big", 1), ("small", 1)]
    assert [g.start for g in gs] == [0, 3, 4, 7]
    flat = planned(load_groups(loaded), lambda g: g.size_hint)
    assert [(g.first.model, g.start) for g in flat] == [("big", 0), ("small", 6)]


def test_wave_order_puts_the_earlier_cycle_first_then_the_slot() -> None:
    gs = list(groups(load("order: williams\n")))
    early, late = gs[0], gs[-1]
    assert early.wave_order > late.wave_order
    same = [g for g in gs if g.cycle == early.cycle]
    assert max(same, key=lambda g: g.wave_order).slot == 0


def test_timeline_index_travels_to_the_worker() -> None:
    job = next(iter_jobs(load()))
    assert Job.from_payload(job.payload()).timeline_index == job.timeline_index == 0
    assert Job.from_payload({**job.payload(), "timeline_index": None}).timeline_index is None


def test_a_server_sweep_is_counted_in_the_size_hint_so_indices_never_collide() -> None:
    loaded = load_text("name: t\nmodels: [llem:tiny]\nbackends: [transformers]\ncycles: 2\n"
                       "grid: {mode: server, dtype: [float32, bfloat16]}\n"
                       "server: {profile: sweep, sweep_levels: 3, requests: 4}\n", "g.yaml")
    jobs = list(iter_jobs(loaded))
    assert len(jobs) == 2 * 2 * 5  # 2 loads x 2 cycles x (3 levels + 2)
    assert len({j.timeline_index for j in jobs}) == len(jobs)
    assert [j.timeline_index for j in jobs] == sorted(j.timeline_index for j in jobs)


def test_interleave_is_a_top_level_override(tmp_path) -> None:
    """run_campaign(grid, overrides={"interleave": ...}) as for order and cycles."""
    from llem.config.load import load_campaign

    grid = tmp_path / "g.yaml"
    grid.write_text(HEAD + "grid: {batch_size: [1, 2]}\n")
    loaded = load_campaign(grid, {"interleave": "within_group", "order": "williams"})
    assert (loaded.campaign.interleave, loaded.campaign.order) == ("within_group", "williams")
    assert [list(g.cycles) for g in groups(loaded)] == [[0, 1, 2], [0, 1, 2]]
