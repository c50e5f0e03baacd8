"""The six kinds of study the project we replace (LLenergyMeasure) ran, each written as ONE
llem grid file (configs/study-*.yaml), with the job count the study implies: checked through
the CLI (`llem run FILE --dry-run --json`, as a user runs it) and in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llem.config.grid import count_points, iter_jobs
from llem.config.load import load_campaign
from tests.support.cli import run_cli
from tests.support.paths import ROOT

# file -> (points, jobs, load groups); each file's header says how its count comes about
STUDIES = {
    "study-cross-backend.yaml": (6, 18, 4),
    "study-precision-batch.yaml": (35, 70, 9),
    "study-quantization.yaml": (24, 72, 24),
    "study-vllm-engine.yaml": (16, 32, 16),
    "study-decoding.yaml": (28, 28, 2),
    "study-traffic.yaml": (7, 21, 1),
}
OFFLINE = {"HF_HUB_OFFLINE": "1"}  # the models' config.json is not fetched: no estimate


def test_every_study_grid_is_listed() -> None:
    assert {p.name for p in (ROOT / "configs").glob("study-*.yaml")} == set(STUDIES)


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_study_job_count_in_process(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_campaign(ROOT / "configs" / name)
    points, jobs, _ = STUDIES[name]
    assert count_points(loaded) == points
    all_jobs = list(iter_jobs(loaded))
    assert len(all_jobs) == jobs and len({j.key for j in all_jobs}) == jobs


def _vllm_env_missing() -> str | None:
    r = run_cli("env", "list", "--json")
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    ready = any(e.get("backend") == "vllm" and e.get("state") == "ready" for e in rows)
    return None if ready else "no vllm environment here (llem env build vllm --variant cpu)"


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_study_job_count_through_the_dry_run(name: str, tmp_path: Path) -> None:
    grid = ROOT / "configs" / name
    if "vllm" in load_campaign(grid).campaign.backends:
        why = _vllm_env_missing()
        if why:
            pytest.skip(why)
    r = run_cli("run", str(grid), "--dry-run", "--json", "--store", str(tmp_path / "s"),
                env=OFFLINE)
    # exit 1: some job needs a GPU this machine does not have (the plan is still printed)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    plan = json.loads(r.stdout)
    points, jobs, groups = STUDIES[name]
    assert (plan["points"], plan["jobs"], len(plan["load_groups"])) == (points, jobs, groups)
    assert not (tmp_path / "s").exists()
