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
# a small config.json for every hub model, in a Hugging Face cache of the test's own: the
# dry run finds each model cached (offline) and estimates its memory from that config
CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 256,
          "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 4, "vocab_size": 1000, "max_position_embeddings": 2048,
          "torch_dtype": "bfloat16"}


def hf_cache(root: Path, models: list[str]) -> dict[str, str]:
    """An offline Hugging Face cache holding each model's config.json; the env to use it."""
    for m in models:
        repo = root / "hub" / f"models--{m.replace('/', '--')}"
        rev = "0" * 40
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(rev)
        (repo / "snapshots" / rev).mkdir(parents=True, exist_ok=True)
        (repo / "snapshots" / rev / "config.json").write_text(json.dumps(CONFIG))
    return {"HF_HOME": str(root), "HF_HUB_OFFLINE": "1"}


def _hub_models(grid: Path) -> list[str]:
    loaded = load_campaign(grid)
    return sorted({m for part in loaded.parts() for m in part.campaign.models})


def test_every_study_grid_is_listed() -> None:
    assert {p.name for p in (ROOT / "configs").glob("study-*.yaml")} == set(STUDIES)


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_study_job_count_in_process(name: str) -> None:
    loaded = load_campaign(ROOT / "configs" / name)
    points, jobs, _ = STUDIES[name]
    assert count_points(loaded) == points
    all_jobs = list(iter_jobs(loaded))
    assert len(all_jobs) == jobs and len({j.key for j in all_jobs}) == jobs


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_study_job_count_through_the_dry_run(name: str, tmp_path: Path) -> None:
    grid = ROOT / "configs" / name
    env = hf_cache(tmp_path / "hf", _hub_models(grid))
    r = run_cli("run", str(grid), "--dry-run", "--json", "--store", str(tmp_path / "s"),
                env=env)
    # planning on a machine without the GPUs or backend environments the jobs need: what
    # cannot be checked here is a note of the plan, not an error
    assert r.returncode == 0, r.stderr[-3000:]
    plan = json.loads(r.stdout)
    points, jobs, groups = STUDIES[name]
    assert (plan["points"], plan["jobs"], len(plan["load_groups"])) == (points, jobs, groups)
    assert not (tmp_path / "s").exists()


def test_a_check_the_dry_run_could_not_make_is_named(tmp_path: Path) -> None:
    """Without a vllm environment here, the plan still comes, and says that vLLM's engine
    keys were not checked against vLLM's own fields, and why."""
    grid = ROOT / "configs" / "study-vllm-engine.yaml"
    env = {**hf_cache(tmp_path / "hf", _hub_models(grid)),
           "LLEM_ENVS_DIR": str(tmp_path / "no-envs"), "LLEM_CACHE": str(tmp_path / "cache")}
    r = run_cli("run", str(grid), "--dry-run", "--json", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    plan = json.loads(r.stdout)
    assert plan["jobs"] == 32
    assert "vllm engine keys against vLLM's own fields: no vllm environment is built here " \
           "(llem env build vllm)" in plan["not_checked"], plan["not_checked"]
    r = run_cli("run", str(grid), "--dry-run", env=env)
    assert "not checked: vllm engine keys against vLLM's own fields" in r.stdout + r.stderr
