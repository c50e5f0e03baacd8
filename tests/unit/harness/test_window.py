"""The steady-state window and its figures, on hand-made replies (arithmetic by hand) and on a
real level against the fake server (the window against its timestamps)."""

from __future__ import annotations

import pytest

from llem.harness.server.client import GenParams, Reply
from llem.harness.server.loadgen import LoadResult, run_load
from llem.harness.server.profiles import Constant, Limit, Ramp
from llem.harness.server.window import (
    SLO,
    job_figures,
    request_figures,
    steady_window,
    tokens_inside,
)
from tests.support.fake_openai import fake_openai


def _reply(index: int, sent: float, chunks: list[float], out: int | None, *,
           in_ramp: bool = False, ok: bool = True) -> Reply:
    return Reply(index, scheduled_s=sent, in_ramp=in_ramp, sent_s=sent, chunk_times_s=chunks,
                 first_token_s=chunks[0] if chunks else None,
                 end_s=chunks[-1] if chunks else sent, done_s=chunks[-1] if chunks else sent,
                 input_tokens=3 if out is not None else None, output_tokens=out,
                 usage_reported=out is not None, ok=ok, status=200 if ok else 500,
                 error=None if ok else "HTTP 500")


def _load(replies: list[Reply], target: float | None = 10.0,
          last: float | None = 20.0) -> LoadResult:
    return LoadResult("constant rate=1", replies, started_s=0.0, ended_s=25.0,
                      target_reached_s=target, last_send_s=last, target_rate_per_s=1.0,
                      concurrency=None, stop_reason="requests")


def _replies() -> list[Reply]:
    return [
        _reply(0, 2.0, [8.0, 9.0, 10.0, 11.0], 8, in_ramp=True),  # ramp: 2 of 4 chunks inside
        _reply(1, 10.0, [10.5, 11.0, 11.5, 12.0], 4),  # sent at the window's start
        _reply(2, 15.0, [19.0, 21.0], 6),  # straddles the end: 3 tokens per chunk, 1 inside
        _reply(3, 20.0, [20.5, 21.0], 2),  # the last send: the drain, outside
        _reply(4, 16.0, [], None, ok=False),  # failed in the window
        _reply(5, 12.0, [12.2], 1),  # one token: no TPOT
    ]


def test_window_is_ramp_end_to_last_send() -> None:
    assert steady_window(_load(_replies())) == (10.0, 20.0)
    assert steady_window(_load(_replies(), target=None)) is None
    assert steady_window(_load(_replies(), last=10.0)) is None


def test_tokens_are_apportioned_by_chunk_time() -> None:
    r0, r1, r2, r3, r4, _ = _replies()
    assert tokens_inside(r0, 10.0, 20.0) == 4.0  # 8 tokens over 4 chunks, 2 chunks inside
    assert tokens_inside(r1, 10.0, 20.0) == 4.0
    assert tokens_inside(r2, 10.0, 20.0) == 3.0
    assert tokens_inside(r3, 10.0, 20.0) == 0.0
    assert tokens_inside(r4, 10.0, 20.0) == 0.0
    assert tokens_inside(r1, 10.0, 11.0) == 1.0  # half-open: the chunk at 11.0 is outside
    r1.output_tokens = None
    assert tokens_inside(r1, 10.0, 20.0) is None


def test_job_figures_by_hand() -> None:
    load = _load(_replies())
    job = job_figures(load, energy_j=120.0, slo=SLO(ttft_s=1.0, tpot_s=0.6))
    assert job["window_unavailable"] is None and job["tokens_unavailable"] is None
    assert (job["window_start_s"], job["window_end_s"], job["steady_state_s"]) == (10, 20, 10)
    # sent in [10, 20), not in the ramp: 1, 2, 4, 5 (0 is the ramp's, 3 is the last send)
    assert job["requests_in_window"] == 4 and job["failed_requests_in_window"] == 1
    assert job["achieved_requests_per_s"] == pytest.approx(0.4)
    assert job["output_tokens_in_window"] == 12.0  # 4 + 4 + 3 + 0 + 0 + 1
    assert job["output_tokens_per_s"] == pytest.approx(1.2)
    assert job["input_tokens_in_window"] == 9  # 3 each for 1, 2 and 5
    # SLOs: 1 meets both; 2 misses TTFT (4 s); 4 failed; 5 meets TTFT, one token passes TPOT
    assert job["slo_attainment"] == pytest.approx(0.5)
    assert job["goodput_requests_per_s"] == pytest.approx(0.2)
    assert job["ttft_p50_s"] == pytest.approx(0.5)  # of 0.5, 4.0, 0.2 (successful only)
    assert job["tpot_p50_s"] == pytest.approx(0.45)  # 1: (12 - 10.5) / 3; 2: (21 - 19) / 5
    assert job["itl_p50_s"] == pytest.approx(0.5)  # gaps 0.5 x 3 and 2.0
    assert job["e2e_p99_s"] == pytest.approx(2.0 + 4.0 * 0.98)  # of 0.2, 2.0, 6.0
    assert job["energy_per_output_token_j"] == pytest.approx(10.0)
    assert job["energy_per_request_j"] == pytest.approx(30.0)


def test_request_figures_and_attributed_energy() -> None:
    rows = request_figures(_load(_replies()), energy_j=120.0, slo=SLO(ttft_s=1.0, tpot_s=0.6))
    by = {r["request_index"]: r for r in rows}
    assert [by[i]["energy_attributed_j"] for i in range(6)] == \
        pytest.approx([40.0, 40.0, 30.0, 0.0, 0.0, 10.0])
    assert sum(r["energy_attributed_j"] for r in rows) == pytest.approx(120.0)
    assert by[0]["energy_whole_request_j"] == pytest.approx(80.0)  # 10 J/token x 8 tokens
    assert [by[i]["in_window"] for i in range(6)] == [False, True, True, False, True, True]
    assert [by[i]["slo_met"] for i in range(6)] == [False, True, False, True, False, True]
    r1 = by[1]
    assert (r1["ttft_s"], r1["tpot_s"], r1["e2e_s"], r1["wait_s"]) == \
        pytest.approx((0.5, 0.5, 2.0, 0.0))
    assert r1["itl_s"] == pytest.approx([0.5, 0.5, 0.5])
    assert by[4]["e2e_s"] is None and by[4]["error"] == "HTTP 500"


def test_without_usage_token_figures_are_none_not_partial() -> None:
    replies = _replies()
    replies[2].output_tokens = replies[2].input_tokens = None
    replies[2].usage_reported = False
    load = _load(replies)
    job = job_figures(load, energy_j=120.0, slo=SLO(tpot_s=0.6))
    assert job["output_tokens_in_window"] is None and job["output_tokens_per_s"] is None
    assert "no usage" in job["tokens_unavailable"]
    assert job["slo_attainment"] is None and job["slo_unknown_requests"] == 1
    assert all(r["energy_attributed_j"] is None for r in request_figures(load, 120.0))
    ttft_only = job_figures(load, energy_j=120.0, slo=SLO(ttft_s=1.0))
    assert ttft_only["slo_attainment"] == pytest.approx(0.5)  # TTFT needs no usage


def test_no_window_gives_no_figures() -> None:
    job = job_figures(_load(_replies(), target=None), energy_j=5.0)
    assert job["window_unavailable"] and job["steady_state_s"] is None
    assert job["ttft_p50_s"] is None


def test_a_window_that_held_nothing_gives_no_figures_not_zero() -> None:
    """The meter opened after the last reply (a short level on a busy machine): no request
    sent in it, no token inside. It was an ok row of 0.0 tok/s (round six's CI failure)."""
    load = _load(_replies())
    job = job_figures(load, energy_j=5.0, window=(30.0, 30.2))
    for key in ("output_tokens_per_s", "achieved_requests_per_s", "energy_per_output_token_j"):
        assert job.get(key) is None, key  # the runs row reads them with .get
    assert job["requests_in_window"] == 0
    assert job["window_unavailable"].startswith("the steady-state window (200 ms) held no ")
    assert job["steady_state_s"] == pytest.approx(0.2) and job["ttft_p50_s"] is None
    bare = _replies()  # a server that sends no usage: the token total is unknown, the
    for r in bare:     # window still held nothing (it was 0.0 requests/s, tokens unknown)
        r.output_tokens, r.usage_reported = None, False
    empty = job_figures(_load(bare), energy_j=5.0, window=(30.0, 30.2))
    assert empty["window_unavailable"] == job["window_unavailable"]
    assert empty.get("achieved_requests_per_s") is None
    tail = job_figures(load, energy_j=5.0, window=(21.0, 22.0))  # a chunk inside, no send
    assert tail["window_unavailable"] is None and tail["output_tokens_per_s"] == 4.0  # 3 + 1
    assert tail["requests_in_window"] == 0


def test_a_real_level_window_excludes_ramp_and_drain() -> None:
    with fake_openai(ttft_s=0.05, itl_s=0.02) as server:
        load = run_load(server.base_url, "m", ["p"], Constant(40.0), GenParams(max_tokens=5),
                        limit=Limit(requests=40), ramp=Ramp(seconds=0.5))
    start, end = steady_window(load)
    ramp = [r for r in load.replies if r.in_ramp]
    assert len(ramp) == 10 and all(r.sent_s < start for r in ramp)
    assert start == min(r.sent_s for r in load.measured)
    assert end == max(r.sent_s for r in load.replies)
    assert max(r.done_s for r in load.replies) > end + 0.1  # the drain comes after
    job = job_figures(load, energy_j=100.0)
    rows = request_figures(load, energy_j=100.0)
    assert job["requests_in_window"] == 39  # the last send closes the window
    inside = [t for r in load.replies for t in r.chunk_times_s if start <= t < end]
    assert job["output_tokens_in_window"] == len(inside)  # one token per chunk here
    assert any(t < start for r in ramp for t in r.chunk_times_s)  # ramp tokens before...
    assert any(row["in_ramp"] and row["output_tokens_in_window"] for row in rows)  # ...and in
    assert sum(row["energy_attributed_j"] for row in rows) == pytest.approx(100.0)
    assert job["achieved_requests_per_s"] == pytest.approx(40.0, rel=0.05)
