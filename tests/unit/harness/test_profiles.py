"""Load profiles and load levels: arrival statistics (mean rate, gamma burstiness, seeds), the
ramp's linear rise, closed-loop concurrency against a fake server, open-loop sends that do
not wait for replies, limits, the over-saturation stop (and no false stop), the sweep."""

from __future__ import annotations

import math
import statistics
import time
from itertools import islice, pairwise

import pytest

from llem.harness.server.client import GenParams
from llem.harness.server.loadgen import Saturation, completion_rate, run_load, sweep_rates
from llem.harness.server.profiles import (
    Concurrency,
    Constant,
    Gamma,
    Limit,
    Poisson,
    Ramp,
    Synchronous,
    Throughput,
    closed_cap,
    from_spec,
    open_schedule,
)
from tests.support.fake_openai import fake_openai

N = 50_000
FAST = Saturation(check_s=0.1, sustain_s=1.0)


def _gaps(profile, n: int = N) -> list[float]:
    return list(islice(profile.gaps(), n))


def _cv(xs: list[float]) -> float:
    return statistics.pstdev(xs) / statistics.fmean(xs)


@pytest.mark.parametrize("profile", [Constant(4.0), Poisson(4.0, seed=1),
                                     Gamma(4.0, 0.25, seed=1), Gamma(4.0, 4.0, seed=1)])
def test_mean_gap_is_one_over_rate(profile) -> None:
    assert statistics.fmean(_gaps(profile)) == pytest.approx(0.25, rel=0.03)


@pytest.mark.parametrize("k", [0.25, 1.0, 4.0])
def test_gamma_burstiness_sets_the_gaps_cv(k: float) -> None:
    assert _cv(_gaps(Gamma(10.0, k, seed=2))) == pytest.approx(1 / math.sqrt(k), rel=0.05)
    assert _cv(_gaps(Poisson(10.0, seed=2))) == pytest.approx(1.0, rel=0.05)  # Gamma k=1


def test_seeded_schedules_repeat() -> None:
    assert _gaps(Poisson(3.0, seed=7), 100) == _gaps(Poisson(3.0, seed=7), 100)
    assert _gaps(Gamma(3.0, 0.5, seed=7), 100) == _gaps(Gamma(3.0, 0.5, seed=7), 100)
    assert _gaps(Poisson(3.0, seed=7), 100) != _gaps(Poisson(3.0, seed=8), 100)


def test_ramp_rises_linearly_then_holds_the_rate() -> None:
    sched = list(islice(open_schedule(Constant(100.0), Ramp(seconds=2.0)), 400))
    ramp = [t for t, in_ramp in sched if in_ramp]
    assert all(t < 2.0 for t in ramp) and all(t >= 2.0 for t, r in sched if not r)
    assert len(ramp) == 100  # a linear rise to 100/s over 2 s sends 100 * 2 / 2
    assert sum(t < 1.0 for t in ramp) == 25  # rate t/T: a quarter in the first half
    after = [t for t, r in sched if not r]
    assert statistics.fmean(b - a for a, b in pairwise(after)) == pytest.approx(0.01)
    by_requests = list(islice(open_schedule(Constant(100.0), Ramp(requests=50)), 60))
    assert [r for _, r in by_requests] == [True] * 50 + [False] * 10
    assert by_requests[50][0] == pytest.approx(1.0)  # T = 2 * 50 / 100
    warm = list(islice(open_schedule(Constant(10.0), Ramp(warmup=3)), 5))
    assert warm == [(pytest.approx(i / 10), i < 3) for i in range(5)]


def test_closed_loop_cap_rises_linearly() -> None:
    assert [closed_cap(8, Ramp(seconds=4.0), t, 0)[0] for t in (0, 1, 2.2, 3.9, 4, 9)] == \
        [1, 2, 5, 8, 8, 8]
    assert closed_cap(8, Ramp(seconds=4.0), 1.2, 0)[2] == pytest.approx(0.3, abs=1e-5)
    assert [closed_cap(8, Ramp(requests=16), 0, i)[:2] for i in (0, 7, 15, 16)] == \
        [(1, True), (4, True), (8, True), (8, False)]
    assert closed_cap(4, Ramp(warmup=2), 0, 1)[:2] == (4, True)


def test_closed_loop_never_exceeds_n() -> None:
    with fake_openai(ttft_s=0.01, itl_s=0.005) as server:
        res = run_load(server.base_url, "m", ["a", "b", "c"], Concurrency(3),
                       GenParams(max_tokens=6), limit=Limit(requests=30))
        assert server.max_in_flight == 3 and res.max_in_flight == 3
        sync = run_load(server.base_url, "m", ["a"], Synchronous(), GenParams(max_tokens=4),
                        limit=Limit(requests=5))
    assert len(res.replies) == 30 and all(r.ok for r in res.replies)
    # the prompts cycle in order; requests sent at once may reach the server in any order
    sent = [server.bodies[i]["prompt"] for i in range(30)]
    assert sorted(sent[:3]) == ["a", "b", "c"] and sorted(sent) == sorted(["a", "b", "c"] * 10)
    assert res.target_reached_s == res.replies[2].sent_s  # the third one made 3 in flight
    assert res.concurrency == 3 and res.target_rate_per_s is None
    for a, b in pairwise(sync.replies):  # one at a time
        assert b.sent_s >= a.done_s
    assert completion_rate(sync) == pytest.approx(
        1 / statistics.fmean(r.done_s - r.sent_s for r in sync.replies), rel=0.2)


def test_closed_loop_ramp_and_warmup_are_marked() -> None:
    with fake_openai(itl_s=0.02) as server:
        res = run_load(server.base_url, "m", ["p"], Concurrency(4), GenParams(max_tokens=3),
                       limit=Limit(requests=10), ramp=Ramp(warmup=5))
        thr = run_load(server.base_url, "m", ["p"], Throughput(), GenParams(max_tokens=3),
                       limit=Limit(requests=12))
    assert [r.in_ramp for r in res.replies] == [True] * 5 + [False] * 10
    t = res.target_reached_s  # the first moment after the warmup with 4 in flight
    assert len(res.measured) == 10
    # the loop refills every free slot before it waits, so the target is reached within the
    # batch of sends that starts with the first measured request (5), at most 3 later
    assert t in [r.sent_s for r in res.replies[5:9]]
    # never more than 4 in flight at t; fewer may be seen by the timestamps, as replies that
    # ended at once on a busy machine stamp their end before their slot is given back
    assert 1 <= sum(r.sent_s <= t < r.done_s for r in res.replies) <= 4
    assert res.max_in_flight == 4
    assert thr.max_in_flight == 12  # all at once


def test_open_loop_sends_do_not_wait_for_replies() -> None:
    with fake_openai(ttft_s=0.3, itl_s=0.01) as server:
        res = run_load(server.base_url, "m", ["p"], Constant(40.0), GenParams(max_tokens=3),
                       limit=Limit(requests=30))
    assert res.max_in_flight >= 10  # 40/s with replies of > 0.3 s
    assert res.achieved_rate_per_s == pytest.approx(40.0, rel=0.05)
    assert statistics.median(r.sent_s - r.scheduled_s for r in res.replies) < 0.005
    assert res.stop_reason == "requests" and not res.saturated


def test_duration_limit_and_edges() -> None:
    edges: list[tuple[str, float]] = []
    with fake_openai(itl_s=0.001) as server:
        res = run_load(server.base_url, "m", ["p"], Constant(50.0), GenParams(max_tokens=2),
                       limit=Limit(duration_s=1.0), ramp=Ramp(seconds=0.4),
                       on_edge=lambda name, t: edges.append((name, t)))
    assert res.stop_reason == "duration"
    assert res.target_reached_s - res.started_s == pytest.approx(0.4, abs=0.03)
    assert res.last_send_s - res.target_reached_s == pytest.approx(0.98, abs=0.03)
    assert len(res.measured) == 50 and sum(r.in_ramp for r in res.replies) == 10
    assert [name for name, _ in edges] == ["target_reached", "last_send"]
    assert edges == [("target_reached", res.target_reached_s), ("last_send", res.last_send_s)]


def test_saturation_stops_when_sends_fall_behind() -> None:
    """A cap of 4 in flight on replies of ~0.2 s sustains 20/s, not the 100/s asked."""
    t0 = time.perf_counter()
    with fake_openai(ttft_s=0.2) as server:
        res = run_load(server.base_url, "m", ["p"], Constant(100.0, max_concurrency=4),
                       GenParams(max_tokens=1), limit=Limit(duration_s=20), saturation=FAST)
    assert time.perf_counter() - t0 < 5
    assert res.saturated and res.stop_reason == "saturated"
    assert res.saturation_reason.startswith("send rate fell to 0.")
    assert res.max_in_flight == 4 and server.max_in_flight == 4


def test_saturation_stops_a_growing_queue_and_not_a_steady_one() -> None:
    """A server of 2 slots x ~40 ms serves ~50/s: at 100/s its queue grows, at 20/s not."""
    with fake_openai(itl_s=0.01, max_batch=2) as server:
        over = run_load(server.base_url, "m", ["p"], Poisson(100.0, seed=3),
                        GenParams(max_tokens=4), limit=Limit(duration_s=20), saturation=FAST)
        under = run_load(server.base_url, "m", ["p"], Poisson(20.0, seed=3),
                         GenParams(max_tokens=4), limit=Limit(duration_s=3), saturation=FAST)
    assert over.saturated and "in flight kept growing" in over.saturation_reason
    cut = [r for r in over.replies if not r.ok]
    assert cut and all(r.error.startswith("cancelled") for r in cut)
    assert not under.saturated and under.stop_reason == "duration"
    assert all(r.ok for r in under.replies)


def test_sweep_rates_between_sync_and_max() -> None:
    assert sweep_rates(1.0, 5.0, 3) == pytest.approx([2.0, 3.0, 4.0])
    assert sweep_rates(2.0, 3.0, 0) == []
    with pytest.raises(ValueError):
        sweep_rates(5.0, 1.0, 3)


def test_profiles_from_settings_and_bad_settings() -> None:
    assert from_spec({"kind": "gamma", "rate": 2, "burstiness": 0.5, "seed": 4}) == \
        Gamma(2, 0.5, 4)
    assert from_spec({"kind": "synchronous"}).n == 1
    for bad in ({"kind": "nope"}, {"kind": "poisson", "rate": 0}):
        with pytest.raises(ValueError):
            from_spec(bad)
    with pytest.raises(ValueError):
        Ramp(seconds=1, warmup=2)
    with pytest.raises(ValueError):
        Limit()
