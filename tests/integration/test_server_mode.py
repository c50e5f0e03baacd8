"""Server mode end to end: real `transformers serve` processes started by real workers on a
local Ray (2 declared GPUs, so two load groups run at once: two servers on one node), the
tiny model, two Poisson rate levels per group, the rows checked against their own
timestamps; and a server killed mid-level."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from llem import run_campaign
from llem.config.load import load_text
from llem.store.query import run_sql
from llem.store.store import Store
from tests.support.cli import run_cli

pytestmark = pytest.mark.slow

GRID = """
name: {name}
models: [{model}]
backends: [transformers]
grid:
  mode: server
  dtype: float32
  max_new_tokens: 8
transformers:
  attn_implementation: {attn}
  cb_num_blocks: 64            # serve sizes its KV cache to 60% of RAM otherwise
server:
  profile: poisson
  rate: {rates}
  {limit}
  ramp_s: 1
  slo_ttft_s: 5
  slo_tpot_s: 1
dataset: {{num_prompts: 8}}
measurement: {{idle_baseline_s: 0}}
resources: {{gpus_per_job: 1}}
"""


def _servers(model: Path) -> list[int]:
    """pids of `serve` processes of this model still running (none once a campaign ends)."""
    return [p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
            if "serve" in (p.info["cmdline"] or []) and str(model) in (p.info["cmdline"] or [])]


def _rows(store: Path, sql: str) -> list[dict]:
    return run_sql(Store(store), sql).to_pylist()


def test_two_groups_two_levels_one_server_each(ray_gpus, tiny_model, tmp_path: Path) -> None:
    text = GRID.format(name="srv", model=tiny_model, attn="[sdpa, eager]", rates="[4, 8]",
                       limit="requests: 12")
    summary = run_campaign(load_text(text), store=Store(tmp_path))
    assert (summary.ok, summary.failed) == (4, 0), summary.errors
    assert not _servers(tiny_model), "a server outlived its campaign"
    runs = _rows(tmp_path, "SELECT * FROM runs ORDER BY load_key, request_rate")
    by_group: dict[str, list[dict]] = {}
    for r in runs:
        by_group.setdefault(r["load_key"], []).append(r)
    assert len(by_group) == 2
    for levels in by_group.values():  # one server start per group, kept for both levels
        assert [r["request_rate"] for r in levels] == [4.0, 8.0]
        assert len({r["server_log"] for r in levels}) == 1
        assert len({r["server_url"] for r in levels}) == 1
        assert {r["model_loads"] for r in levels} == {1}
        assert Path(levels[0]["server_log"]).is_file()
    logs = sorted((tmp_path / "logs" / "campaign=srv").glob("*.log"))
    assert len(logs) == 2  # one log per server, beside the store
    a, b = (levels[0] for levels in by_group.values())
    assert a["server_url"] != b["server_url"]  # two servers at once, on their own ports
    assert a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]
    for r in runs:
        assert r["mode"] == "server" and r["status"] == "ok" and not r["saturated"]
        assert r["streaming"] is True  # the client streams every request (it said false)
        assert r["requests_in_window"] >= 8 and r["steady_state_s"] > 0
        assert r["output_tokens_in_window"] > 0 and r["tokens_per_s"] > 0
        assert r["ttft_p99_s"] >= r["ttft_p50_s"] > 0
        assert 0 <= r["slo_attainment"] <= 1 and r["goodput_requests_per_s"] is not None
        assert r["energy_j"] is None and r["energy_unavailable"]  # no GPU counter here
        reqs = _rows(tmp_path, f"SELECT * FROM requests WHERE job_id = '{r['job_id']}' "
                     "ORDER BY request_index")
        assert len(reqs) == r["requests_total"]
        ok = [q for q in reqs if q["ok"]]
        assert len(ok) == len(reqs)
        for q in ok:  # per request: TTFT and every ITL from the stream, tokens from usage
            assert q["ttft_s"] > 0 and q["usage_reported"] and q["output_tokens"] >= 1
            assert len(q["itl_s"] or []) == q["chunks"] - 1  # one chunk: no ITL
            assert q["slo_met"] is not None
        ramp = [q for q in reqs if q["in_ramp"]]
        inside = [q for q in reqs if q["in_window"]]
        assert ramp and not any(q["in_window"] for q in ramp)  # the ramp is never measured
        start, end = r["window_start_s"], r["window_end_s"]
        assert max(q["start_s"] for q in ramp) <= start  # the window opens after the ramp
        assert all(start <= q["start_s"] < end for q in inside)
        assert len(inside) == r["requests_in_window"]
    _compare_and_report(tmp_path, runs)


def _compare_and_report(store: Path, runs: list[dict]) -> None:
    """`llem compare` (the CLI) has a row per level with its achieved rate, goodput and SLO
    attainment; `llem report` draws the levels against the achieved rate (no energy on this
    machine: J/token is left out, not drawn as zero)."""
    r = run_cli("compare", "srv", "--store", str(store), "--format", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert sorted(x["server.rate"] for x in out) == [4.0, 4.0, 8.0, 8.0]
    for x in out:
        attn = next(v for k, v in x.items() if "attn_implementation" in k)
        run = next(q for q in runs if q["request_rate"] == x["server.rate"] and
                   f'"{attn}"' in q["point_json"])
        assert x["n"] == 1
        assert x["goodput_requests_per_s_mean"] == pytest.approx(run["goodput_requests_per_s"])
        assert x["slo_attainment_mean"] == pytest.approx(run["slo_attainment"])
        assert x["arrival_rate_achieved_mean"] == pytest.approx(run["arrival_rate_achieved"])
    page = store / "r.html"
    r = run_cli("report", "srv", "--store", str(store), "-o", str(page))
    assert r.returncode == 0 and "4 configurations" in r.stdout, r.stdout + r.stderr
    html = page.read_text()
    data = json.loads(re.search(r'id="llem-data">(.*?)</script>', html, re.S)
                      .group(1).replace("<\\/", "</"))
    assert data["server"] and "server.rate" in data["swept"]
    assert 'id="fig-rate_levels"' in html
    assert 'id="fig-energy_latency_pareto"' not in html  # no energy measured here
    assert "Energy was not measured" in html


def _kill_server_mid_level(model: str, into_s: float, done: threading.Event,
                           killed: list[int], sig: int = signal.SIGKILL,
                           when: list[float] | None = None) -> None:
    """Signal (SIGKILL) the first `transformers serve` process of model into_s seconds after
    it answers (model: this test's own tiny model; other servers on the machine are left);
    its pid to killed, the time (monotonic) to when."""
    when = [] if when is None else when
    while not done.is_set():
        for p in psutil.process_iter(["pid", "cmdline"]):
            args = p.info["cmdline"] or []
            if "serve" in args and "--port" in args and model in args and \
                    _answers(p, args[args.index("--port") + 1], done):
                time.sleep(into_s)
                with contextlib.suppress(ProcessLookupError):  # it ended: find the next one
                    os.kill(p.info["pid"], sig)
                    killed.append(p.info["pid"])
                    when.append(time.monotonic())
                    return
        time.sleep(0.2)


def _answers(p: psutil.Process, port: str, done: threading.Event) -> bool:
    """Wait until the server p answers on port; False if p ended or the campaign did first
    (then there is nothing of this server to signal)."""
    while not done.is_set() and p.is_running():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            return True
        except OSError:
            time.sleep(0.2)
    return False


def test_server_killed_mid_level(ray_gpus, tiny_model, tmp_path: Path) -> None:
    """The level whose server dies fails with the cause; the next level gets a new server."""
    text = GRID.format(name="kill", model=tiny_model, attn="sdpa", rates="[2, 3]",
                       limit="duration_s: 12")
    done, killed = threading.Event(), []
    t = threading.Thread(target=_kill_server_mid_level,
                         args=(str(tiny_model), 4.0, done, killed), daemon=True)
    t.start()
    try:
        run_campaign(load_text(text), store=Store(tmp_path))
    finally:
        done.set()
    assert killed, "no server process was found to kill"
    runs = _rows(tmp_path, "SELECT status, error, server_log, request_rate FROM runs "
                 "ORDER BY request_rate")
    failed = [r for r in runs if r["status"] == "failed"]
    assert failed and ("server" in failed[0]["error"].lower()), runs
    assert "exit" in failed[0]["error"].lower() or "died" in failed[0]["error"].lower()
    later = [r for r in runs if r["request_rate"] > failed[0]["request_rate"]]
    if later:  # the level after the death ran on a new server
        assert later[0]["status"] == "ok"
        assert len(list((tmp_path / "logs" / "campaign=kill").glob("*.log"))) == 2
    assert not _servers(tiny_model), "a server outlived its campaign"


VLLM_GRID = """
name: vsrv
models: [{model}]
backends: [vllm]
grid:
  mode: server
  dtype: float32
  max_new_tokens: 8
vllm: {{enforce_eager: true, max_num_seqs: 8}}
environments:
  vllm:
    variant: cpu
    env_vars: {{VLLM_CPU_KVCACHE_SPACE: "1", VLLM_CACHE_ROOT: "{cache}"}}
server:
  profile: poisson
  rate: [4, 8]
  requests: 12
  ramp_s: 1
dataset: {{num_prompts: 8}}
measurement: {{idle_baseline_s: 0}}
"""


def test_vllm_serve_two_levels_one_server(ray_gpus, tiny_model, vllm_python,
                                          tmp_path: Path) -> None:
    """`vllm serve` (the vllm-cpu environment's python -m vllm.entrypoints.openai.api_server)
    started by a worker running in that environment: the same checks as transformers."""
    text = VLLM_GRID.format(model=tiny_model, cache=tmp_path / "vllm-cache")
    summary = run_campaign(load_text(text), store=Store(tmp_path / "store"))
    assert (summary.ok, summary.failed) == (2, 0), summary.errors
    runs = _rows(tmp_path / "store", "SELECT * FROM runs ORDER BY request_rate")
    assert len({r["server_log"] for r in runs}) == 1 and {r["model_loads"] for r in runs} == {1}
    assert Path(runs[0]["python_executable"]) == vllm_python
    for r in runs:
        assert r["mode"] == "server" and r["requests_in_window"] >= 8
        assert r["output_tokens_in_window"] > 0 and r["ttft_p50_s"] > 0
        reqs = _rows(tmp_path / "store", f"SELECT * FROM requests WHERE job_id = "
                     f"'{r['job_id']}'")
        assert all(q["ok"] and q["usage_reported"] and q["ttft_s"] > 0 for q in reqs)
        inside = [q for q in reqs if q["in_window"]]
        assert all(r["window_start_s"] <= q["start_s"] < r["window_end_s"] for q in inside)
        assert not any(q["in_window"] for q in reqs if q["in_ramp"])
        polls = _rows(tmp_path / "store", "SELECT * FROM samples WHERE job_id = "
                      f"'{r['job_id']}' AND server_requests_running IS NOT NULL")
        assert polls, "vLLM's /metrics sampled into the timeline"
        assert all(0 <= p["t_s"] <= r["steady_state_s"] + 0.01 for p in polls)
        assert all(p["server_kv_cache_usage_pct"] is not None for p in polls)


def test_a_job_past_its_timeout_stops_its_server_at_once(ray_gpus, tiny_model,
                                                          tmp_path: Path) -> None:
    """A server that stops answering mid-level (SIGSTOP): the job times out, and the worker's
    server is stopped and the worker killed at the timeout. The stop was a call queued
    behind the hung one (one call at a time), waited for 60 s, then a SIGKILL of the
    worker, which the frozen server (its own session) outlived. The timeout counts from
    the job's start, the server's start included: 15 s was spent before a busy 2-core
    machine's server answered (CI), so nothing was frozen; 40 s leaves room."""
    text = GRID.format(name="late", model=tiny_model, attn="sdpa", rates="[2]",
                       limit="duration_s: 10").replace(
        "idle_baseline_s: 0", "idle_baseline_s: 0, job_timeout_s: 40")
    done, frozen, at = threading.Event(), [], []
    t = threading.Thread(target=_kill_server_mid_level, daemon=True,
                         args=(str(tiny_model), 1.0, done, frozen, signal.SIGSTOP, at))
    t.start()
    try:
        run_campaign(load_text(text), store=Store(tmp_path))
    finally:
        done.set()
        for pid in frozen:  # if the stop failed, let the test's own clean-up reach it
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
    after_freeze = time.monotonic() - at[0] if at else None
    runs = _rows(tmp_path, "SELECT status, error, server_url FROM runs")
    assert frozen, f"no server process was found to freeze: {runs}"
    assert [r["status"] for r in runs] == ["failed"], runs
    assert runs[0]["error"].startswith("JobTimeout: timed out after 40 s"), runs
    assert not _servers(tiny_model), "a server outlived its timed-out worker"
    # after the freeze: the rest of the 40 s (the server's start, ~14 s here, came before)
    # and the stop, a Ray task on the worker's node: 25 s here, 66 s with two CPU hogs on
    # this 2-core machine; the old stop's 60 s wait came on top of it (~85 s)
    assert after_freeze is not None and after_freeze < 70, after_freeze
