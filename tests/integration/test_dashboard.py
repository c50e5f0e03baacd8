"""What a user watching a campaign in the Ray dashboard sees: actor, call and metric names.

A `ray start --head` with its dashboard and metrics export port (tests.ray_head), one small
noop campaign run against it by `llem run --address` as a subprocess, then what the State
API (the dashboard's Actors and Tasks tables) and the node's Prometheus endpoint report,
checked against the store.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llem.store.store import Store
from tests.support.cli import run_cli
from tests.support.ray_head import Head, ray_head

pytestmark = pytest.mark.slow

GRID = """
name: dash
models: [alpha, beta/gamma]
backends: [noop]
cycles: 2
interleave: within_group     # one worker and one load per model, as the tests below count
grid: {max_new_tokens: 4, generate.fail: [boom, null]}
noop: {request_s: 0.05}
dataset: {num_prompts: 4}
measurement: {warmup_requests: 0, thermal_gaps: false}
scheduling: {cpu_jobs_per_node: 2}  # CPU jobs: one worker per model, both at once
"""
SHORT = {"alpha": "alpha", "beta/gamma": "gamma"}  # the model as call names show it
DEADLINE_S = 30.0  # task events and metrics reach the dashboard within a few seconds


@dataclass
class Campaign:
    head: Head
    runs: list[dict[str, Any]]  # the stored results
    session: dict[str, Any]  # the stored session row: workers, model loads


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory, llem_cache: Path):
    """The campaign, run to its end by `llem run --address` on a head of its own."""
    tmp = tmp_path_factory.mktemp("dash")
    (tmp / "g.yaml").write_text(GRID)
    (tmp / "ray").mkdir()
    with ray_head(tmp / "ray") as head:
        r = run_cli("run", str(tmp / "g.yaml"), "--address", head.gcs, "--store",
                    str(tmp / "store"), env={"RAY_AUTH_MODE": "disabled"}, timeout=120)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        store = Store(tmp / "store")
        runs = store.read("runs", "dash", ["job_id", "cycle", "model", "backend", "status",
                                           "finished_at", "tokens_per_s", "energy_j"])
        sessions = store.read("sessions", "dash").to_pylist()
        assert len(sessions) == 1
        yield Campaign(head, runs.to_pylist(), sessions[0])


def poll(fetch: Callable[[], Any], ok: Callable[[Any], bool]) -> Any:
    """fetch() until ok(result) or DEADLINE_S; the last result either way (for the assert)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        got = fetch()
        if ok(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def test_campaign_ran(campaign: Campaign) -> None:
    """The run the other tests look at: 8 jobs, half failed on purpose, one worker per model."""
    assert len(campaign.runs) == 8
    assert sorted(r["status"] for r in campaign.runs) == ["failed"] * 4 + ["ok"] * 4
    assert campaign.session["workers"] == 2


def scrape(port: int) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    """The node's Prometheus text, llem's series only: name -> {labels: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    series: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(ray_llem_\w+)\{(.*)\} (\S+)", line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
            series.setdefault(m.group(1), {})[labels] = float(m.group(3))
    return series


def llem_view(series: dict[str, dict[frozenset[tuple[str, str]], float]]
              ) -> dict[tuple[str, ...], float]:
    """(name, llem's own tags...) -> value for campaign dash; Ray's labels dropped."""
    view: dict[tuple[str, ...], float] = {}
    for name, by_labels in series.items():
        for labels, value in by_labels.items():
            tags = dict(labels)
            if tags.get("campaign") != "dash":
                continue
            key = (name, *(tags[k] for k in ("backend", "model") if k in tags))
            view[key] = view.get(key, 0.0) + value
    return view


def test_metrics(campaign: Campaign) -> None:
    """The node's metrics export port carries llem's counters and gauges, tagged with the
    campaign, with the values the store holds. Checked first: the agent drops a gauge ~20 s
    (two report intervals) after the driver that set it is gone."""
    ok = [r for r in campaign.runs if r["status"] == "ok"]
    expected: dict[tuple[str, ...], float] = {
        ("ray_llem_jobs_done_total",): float(len(ok)),
        ("ray_llem_jobs_failed_total",): float(len(campaign.runs) - len(ok)),
        ("ray_llem_model_loads_total",): float(campaign.session["model_loads"]),
        ("ray_llem_jobs_pending",): 0.0,
        ("ray_llem_workers",): 0.0,
    }
    for model in SHORT:  # the gauge holds the last job's tokens/s, per backend and model
        last = max((r for r in ok if r["model"] == model), key=lambda r: r["finished_at"])
        expected[("ray_llem_tokens_per_second", "noop", model)] = last["tokens_per_s"]
    energy = sum(r["energy_j"] or 0.0 for r in ok)
    if energy:  # a CPU job has energy only where RAPL is readable; else no series at all
        expected[("ray_llem_energy_joules_total", "noop")] = energy
    view = poll(lambda: llem_view(scrape(campaign.head.metrics_port)),
                lambda v: v == pytest.approx(expected, rel=1e-9))
    assert view == pytest.approx(expected, rel=1e-9)
    assert campaign.session["model_loads"] == 2


def test_actor_names_and_repr(campaign: Campaign) -> None:
    from ray.util.state import list_actors

    actors = list_actors(address=campaign.head.dashboard, detail=True, limit=1000,
                         filters=[("class_name", "=", "WorkerActor")])
    assert sorted(a.name for a in actors) == ["dash/noop/worker-0", "dash/noop/worker-1"]
    reprs = set()
    for a in actors:
        assert a.ray_namespace == "llem"
        m = re.fullmatch(r"llem:noop:(\w+):gpu=none:node=(\w{8})", a.repr_name)
        assert m is not None, a.repr_name
        assert m.group(2) == a.node_id[:8]
        reprs.add(m.group(1))
    assert reprs == {"alpha", "gamma"}  # the two groups started side by side


def test_call_names(campaign: Campaign) -> None:
    """Every stored job is one call named backend/model/job_id-c<cycle>, run by the actor
    whose repr names that model."""
    from ray.util.state import list_actors, list_tasks

    expected = sorted(f"noop/{SHORT[r['model']]}/{r['job_id']}-c{r['cycle']}"
                      for r in campaign.runs)

    def calls() -> list[Any]:
        tasks = list_tasks(address=campaign.head.dashboard, detail=True, limit=10_000,
                           filters=[("type", "=", "ACTOR_TASK")])
        return [t for t in tasks if t.name.startswith("noop/")]

    tasks = poll(calls, lambda ts: sorted(t.name for t in ts) == expected
                 and all(t.state == "FINISHED" for t in ts))
    assert sorted(t.name for t in tasks) == expected
    assert {t.state for t in tasks} == {"FINISHED"}  # a failed job is a result, not an error
    assert {t.func_or_class_name for t in tasks} == {"WorkerActor.run"}
    reprs = {a.actor_id: a.repr_name for a in list_actors(
        address=campaign.head.dashboard, detail=True, limit=1000,
        filters=[("class_name", "=", "WorkerActor")])}
    for t in tasks:
        assert reprs[t.actor_id].startswith(f"llem:noop:{t.name.split('/')[1]}:"), t.name
