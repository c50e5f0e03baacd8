"""Hostile input, round six: endpoints that answer wrongly, through llem's load client and
through `llem run` on the endpoint backend (the CLI as a subprocess, its embedded local Ray).

One small aiohttp server of this module plays every fault at its own path prefix
(http://127.0.0.1:PORT/<fault>/v1/completions), so one campaign's base_url axis reaches them
all: each fault is a job of its own, and the campaign goes on past each. What must hold: a
failed request is a record with a one-line reason, a level whose requests all failed is a
failed row, no number is computed from a count the server got wrong (negative, text, 2.5,
true, 0 beside content), nothing hangs, and the key never shows (console, logs, Parquet)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from llem.harness.server.client import GenParams, Timeouts
from llem.harness.server.loadgen import run_load
from llem.harness.server.profiles import Concurrency, Limit
from llem.harness.server.window import job_figures
from tests.support.cli import run_cli
from tests.support.faults import grep_tree

KEY = "r6-endpoint-key-PlantedZq81"  # the endpoint's bearer key: never shown or stored
FLAKY: list[int] = []
USAGE = {"neg": -5, "text": "many", "half": 2.5, "yes": True, "zero": 0, "huge": 10**30,
         "over": 40}


def _event(data: dict) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def _chunk(text: str, finish: str | None = None) -> bytes:
    return _event({"choices": [{"index": 0, "text": text, "finish_reason": finish}]})


async def _handle(request: web.Request) -> web.StreamResponse:
    fault = request.match_info["fault"]
    body = await request.json()
    if fault == "hang":  # accepts the request and never answers
        await asyncio.sleep(3600)
    n = int(body.get("max_tokens") or 4)
    if fault == "by_tokens":  # one load group's levels, each a fault (one worker for all)
        fault = BY_TOKENS[n]
    if request.headers.get("Authorization") != f"Bearer {KEY}":
        return web.json_response({"error": {"message": "bad key"}}, status=401)
    if fault == "flaky":  # every other request: an error
        FLAKY.append(1)
        fault = "status503" if len(FLAKY) % 2 else "ok"
    if fault.startswith("status"):
        return web.json_response({"error": {"message": f"fake {fault}"}},
                                 status=int(fault[6:]))
    if fault == "html":
        return web.Response(text="<html><body>nginx</body></html>", content_type="text/html")
    if fault == "json":  # an answer, but not server-sent events
        return web.json_response({"choices": [{"text": "tok " * n}],
                                  "usage": {"prompt_tokens": 3, "completion_tokens": n}})
    if fault == "model" and body.get("model") != "served-name":
        return web.json_response({"error": {"message": f"model {body.get('model')} does not "
                                            "exist"}}, status=404)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    if fault == "cut":  # closed mid-stream
        await resp.write(_chunk("tok "))
        assert request.transport is not None
        request.transport.close()
        return resp
    if fault == "endless":  # content past max_tokens, until the client hangs up
        with contextlib.suppress(ConnectionError):
            while True:
                await resp.write(_chunk("tok "))
                await asyncio.sleep(0.05)
        return resp
    if fault == "paced":  # a good reply, a chunk each 0.25 s: a window a busy machine's
        for k in range(n):  # meter opens in time to see (an instant one measured nothing)
            await asyncio.sleep(0.25)
            await resp.write(_chunk("tok ", "length" if k == n - 1 else None))
        await resp.write(_event({"choices": [], "usage": {"prompt_tokens": 3,
                                                          "completion_tokens": n}}))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
    chunks = n if fault != "giant" else 1
    out = b"".join(_chunk("tok " * (n if fault == "giant" else 1),
                          "length" if k == chunks - 1 else None) for k in range(chunks))
    tokens = USAGE.get(fault, n)
    out += _event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": tokens}})
    await resp.write(out + (b"" if fault == "noDONE" else b"data: [DONE]\n\n"))
    await resp.write_eof()
    return resp


@pytest.fixture(scope="module")
def faults() -> Iterator[str]:
    """The fault server's root URL (its thread and loop end with the module)."""
    app = web.Application()
    app.router.add_post("/{fault}/v1/completions", _handle)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def start() -> web.AppRunner:
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=0.2)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        ready.set()
        return runner

    def serve() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _level(url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list, dict]:
    monkeypatch.setenv("LLEM_R6_KEY", KEY)
    load = run_load(url, "m", ["hi"], Concurrency(n=2), GenParams(max_tokens=4),
                    limit=Limit(requests=4), api_key_env="LLEM_R6_KEY",
                    timeouts=Timeouts(2, 3, 5))
    return load.replies, job_figures(load, energy_j=10.0)


# --- the client: a usage the server got wrong ------------------------------------------------


@pytest.mark.parametrize(("fault", "why"), [
    ("neg", "usage.completion_tokens is -5, not a count"),  # tok/s and J/token were negative
    ("text", "usage.completion_tokens is 'many', not a count"),  # a TypeError in the window
    ("half", "usage.completion_tokens is 2.5, not a count"),
    ("yes", "usage.completion_tokens is True, not a count"),  # counted as 1 token
    ("huge", "usage.completion_tokens is 1000000000000000000000000000000, not"),
    ("zero", "usage says 0 output tokens for a reply that streamed content"),  # 0 tok/s, ok
    # 40 tokens for max_tokens 4: tok/s ten times what was decoded, J/token a tenth
    ("over", "usage says 40 output tokens, more than the request's max_tokens (4)"),
])
def test_a_usage_that_is_no_count_fails_the_request(fault: str, why: str, faults: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    replies, figs = _level(f"{faults}/{fault}", monkeypatch)
    assert not any(r.ok for r in replies)
    assert all(why in (r.error or "") and r.output_tokens is None for r in replies), replies[0]
    assert figs["failed_requests_in_window"] == figs["requests_in_window"] > 0
    assert figs["energy_per_output_token_j"] is None and figs["output_tokens_per_s"] == 0


@pytest.mark.parametrize(("fault", "why"), [
    ("html", "the server answered text/html; charset=utf-8, not server-sent events"),
    ("json", "the server answered application/json; charset=utf-8, not server-sent events"),
    ("endless", "the server sent more than max_tokens (4) content chunks"),  # ran to total_s
    ("cut", "ClientPayloadError"),
    ("status500", "HTTP 500 Internal Server Error: "),
])
def test_an_answer_that_is_no_stream_fails_with_why(fault: str, why: str, faults: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    t0 = time.monotonic()
    replies, _ = _level(f"{faults}/{fault}", monkeypatch)
    assert time.monotonic() - t0 < 4  # the endless stream ran to the 5 s total before
    assert not any(r.ok for r in replies) and why in (replies[0].error or ""), replies[0]


@pytest.mark.parametrize("fault", ["noDONE", "giant"])
def test_a_stream_without_done_or_in_one_piece_is_fine(fault: str, faults: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    replies, figs = _level(f"{faults}/{fault}", monkeypatch)
    assert all(r.ok and r.output_tokens == 4 for r in replies), replies[0]
    assert figs["output_tokens_per_s"] > 0


def _level_of(fault: str, faults: str, requests: int) -> tuple[Any, Any, Any]:
    """(job, load, profile): one closed-loop level of 2 against the fault server's route."""
    from llem.config.grid import iter_jobs
    from llem.config.load import load_text

    [job] = iter_jobs(load_text(
        f"name: t\nmodels: [m]\nbackends: [endpoint]\nendpoint: {{base_url: '{faults}/"
        f"{fault}', api_key_env: LLEM_R6_KEY}}\ngrid: {{mode: server, max_new_tokens: 4}}\n"
        f"server: {{profile: concurrency, concurrency: 2, requests: {requests}}}\n"))
    profile = Concurrency(n=2)
    load = run_load(f"{faults}/{fault}", "m", ["hi"], profile, GenParams(max_tokens=4),
                    limit=Limit(requests=requests), api_key_env="LLEM_R6_KEY")
    return job, load, profile


def test_a_level_with_failed_requests_has_no_valid_energy(faults: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Half the window's requests failed: its energy went into them too, its token counts
    hold none of their output, so J/token is no measurement (it was a valid row)."""
    from llem.harness.server.level import LevelRun
    from llem.harness.server.rows import level_result
    from llem.harness.server.window import SLO, steady_window
    from llem.measure.meter import Window

    monkeypatch.setenv("LLEM_R6_KEY", KEY)
    job, load, profile = _level_of("flaky", faults, 12)
    start, end = steady_window(load) or (0.0, 0.0)
    gpu = {"GPU-r6": 50.0}
    window = Window(end - start, gpu, dict(gpu), {"GPU-r6": 10.0}, {}, started_s=start,
                    counter_period_s=(end - start) / 100, sample_hz=None)  # 100 periods
    run = level_result(job, LevelRun(load, window, None, SLO(), profile), {}, time.time()).run
    failed = run.failed_requests_in_window
    assert run.status == "ok" and 0 < failed < run.num_requests, run  # some failed, not all
    assert run.energy_valid is False, run.energy_invalid_reasons
    assert run.energy_invalid_reasons[-1] == (
        f"failed_requests: {failed} of the window's {run.num_requests} requests failed (their "
        "energy is in the window, their output in no token count)")


def test_a_level_whose_every_request_failed_outside_any_window_is_failed(
        faults: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request answered 404 at once: the window (load at target .. last send) held
    none of them, and the level was an ok row of 0 tok/s (seen once in about 8 campaigns)."""
    from llem.harness.server.level import LevelRun
    from llem.harness.server.rows import level_result
    from llem.harness.server.window import SLO
    from llem.measure.meter import Window

    monkeypatch.setenv("LLEM_R6_KEY", KEY)
    job, load, profile = _level_of("status404", faults, 4)
    assert load.replies and not any(r.ok for r in load.replies)
    end = max(r.done_s or 0.0 for r in load.replies) + 1.0  # a window after every reply
    window = Window(1.0, {"GPU-r6": 50.0}, {"GPU-r6": 50.0}, {"GPU-r6": 10.0}, {},
                    started_s=end, counter_period_s=0.01, sample_hz=None)
    with pytest.raises(RuntimeError, match=r"every request of the level failed \(4\), e\.g\.: "
                       "HTTP 404"):
        level_result(job, LevelRun(load, window, None, SLO(), profile), {}, time.time())


# --- `llem run` on the endpoint backend: every fault a job of one campaign ------------------

# max_new_tokens -> the fault the server plays: levels of one load group, so one worker
# serves them all (a worker per base_url took 10 s each on a busy 2-core machine)
BY_TOKENS = {4: "paced", 5: "status401", 6: "neg", 7: "model", 8: "cut", 9: "text", 10: "zero"}
WHY = {"status401": "HTTP 401 Unauthorized: ", "neg": "usage.completion_tokens is -5, not",
       "model": "HTTP 404 Not Found: {\"error\": {\"message\": \"model m does not exist",
       "cut": "ClientPayloadError: Response payload is not completed|the reply was cut short",
       "text": "usage.completion_tokens is 'many', not", "zero": "usage says 0 output tokens"}
GRID = """name: faults
models: [m]
backends: [endpoint]
endpoint: {{base_url: '{url}', api_key_env: LLEM_R6_KEY}}
grid: {{mode: server, max_new_tokens: [{tokens}]}}
server: {{profile: concurrency, concurrency: 2, requests: 4}}
dataset: {{num_prompts: 4}}
measurement: {{idle_baseline_s: 0, thermal_gaps: false}}
"""


@pytest.mark.slow
def test_a_campaign_of_faulty_levels_goes_on_and_shows_no_key(faults: str,
                                                             tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID.format(url=f"{faults}/by_tokens", tokens=", ".join(map(str, BY_TOKENS))))
    ray_tmp = Path(tempfile.mkdtemp(prefix="r6", dir="/tmp"))  # short: Ray's socket paths
    store = tmp_path / "st"
    t0 = time.monotonic()
    try:
        r = run_cli("run", str(grid), "--store", str(store), timeout=240,
                    env={"LLEM_R6_KEY": KEY, "RAY_TMPDIR": str(ray_tmp)})
        took = time.monotonic() - t0
        leaks = grep_tree(ray_tmp, KEY) + grep_tree(tmp_path, KEY)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert r.returncode == 0, r.stderr[-3000:]  # some levels ok: the campaign's own success
    assert "Traceback" not in r.stderr + r.stdout and "internal error" not in r.stderr
    assert KEY not in r.stderr + r.stdout and leaks == []
    assert took < 90, took
    q = run_cli("query", "SELECT max_new_tokens, status, error, tokens_per_s, requests_total, "
                "energy_per_token_j FROM runs ORDER BY max_new_tokens", "--format", "json",
                "--store", str(store))
    rows = {row["max_new_tokens"]: row for row in json.loads(q.stdout)}
    assert sorted(rows) == sorted(BY_TOKENS), q.stderr  # every level stored, none lost
    ok = rows[4]
    assert ok["status"] == "ok" and ok["tokens_per_s"] > 0 and ok["requests_total"] == 4, ok
    for n, fault in BY_TOKENS.items():
        if fault == "paced":
            continue
        row = rows[n]
        assert row["status"] == "failed" and row["tokens_per_s"] is None, row  # no number
        assert row["energy_per_token_j"] is None, row
        assert "\n" not in row["error"], (fault, row["error"])
        assert any(w in row["error"] for w in WHY[fault].split("|")), (fault, row["error"])


@pytest.mark.slow
def test_a_job_past_its_timeout_on_a_server_that_never_answers_stops_on_time(
        faults: str, tmp_path: Path) -> None:
    """job_timeout_s 5 on an endpoint that never answers: each job is stopped at its timeout.
    The driver waited 60 s on each hung worker for a server stop queued behind the hung call
    (an endpoint launches no server): two jobs took 132 s; now 22 s here."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID.format(url=f"{faults}/hang", tokens="4, 5").replace(
        "thermal_gaps: false", "thermal_gaps: false, job_timeout_s: 5"))
    t0 = time.monotonic()
    r = run_cli("run", str(grid), "--store", str(tmp_path / "st"), timeout=240,
                env={"LLEM_R6_KEY": KEY})
    took = time.monotonic() - t0
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr[-3000:]
    assert r.stderr.count("timed out after 5 s (measurement.job_timeout_s)") == 2, r.stderr
    assert took < 80, (took, r.stderr[-2000:])


def test_a_window_that_measured_nothing_is_no_figure_and_says_why(
        faults: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The meter's window opened after an instant server's last reply (a busy machine): the
    level was an ok row of 0.0 tok/s (round six's campaign on CI). Now no figure, the reason
    in the row, and the results table says it under J/token, read from real Parquet."""
    from llem.cli.stats_table import config_rows, missing_reasons
    from llem.harness.server.level import LevelRun
    from llem.harness.server.rows import level_result
    from llem.harness.server.window import SLO
    from llem.measure.meter import Window
    from llem.store.store import Store

    monkeypatch.setenv("LLEM_R6_KEY", KEY)
    job, load, profile = _level_of("ok", faults, 4)
    assert all(r.ok for r in load.replies)
    end = max(r.done_s or 0.0 for r in load.replies) + 0.5  # opened after every reply
    gpu = {"GPU-r6": 5.0}
    window = Window(12.0, gpu, dict(gpu), {"GPU-r6": 0.1}, {}, started_s=end,
                    counter_period_s=0.01, sample_hz=None)  # a window valid by every check
    result = level_result(job, LevelRun(load, window, None, SLO(), profile), {}, time.time())
    run = result.run
    assert run.status == "ok" and run.energy_j == 5.0, run  # the energy was measured
    assert run.tokens_per_s is None and run.energy_per_token_j is None, run  # was 0.0
    assert run.requests_per_s is None and run.num_requests == 0, run
    assert run.energy_valid, run.energy_invalid_reasons
    assert run.window_unavailable.startswith("the steady-state window (12000 ms) held no ")
    store = Store(tmp_path)
    store.write_result(result)
    rows = config_rows(store, job.campaign)
    assert missing_reasons(rows) == [f"J/token not measured: {run.window_unavailable}"]
