"""A hub model that cannot be loaded from here is refused in seconds, in one line, exit 2,
by `llem run --dry-run` and by `llem run` before Ray starts (it cost 24 s of retries, exit 0,
then a failed job). This machine reaches no hub: every id is unreachable, a cached one passes
offline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.cli import run_cli

GRID = """
name: hub
models: [{model}]
backends: [transformers]
grid: {{batch_size: 1, max_new_tokens: 2}}
dataset: {{num_prompts: 2}}
"""


@pytest.mark.parametrize("offline", ["", "1"], ids=["online", "HF_HUB_OFFLINE"])
@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_an_unreachable_hub_model_is_one_line(tmp_path: Path, dry: bool, offline: str) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text(GRID.format(model="made-up-org/no-such-model-4711"))
    t0 = time.perf_counter()
    proc = run_cli("run", str(grid), "--store", str(tmp_path / "store"),
                   *(["--dry-run"] if dry else []),
                   env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": offline})
    took = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("error: model made-up-org/no-such-model-4711"), lines[0]
    assert ("HF_HUB_OFFLINE is set" if offline else "cannot be reached") in lines[0]
    assert "Ray" not in proc.stderr and not (tmp_path / "store").exists()
    assert took < 10, took


def test_a_cached_hub_model_passes_offline(tmp_path: Path) -> None:
    """The check reads the local HF cache first: a cached model needs no network."""
    hf = tmp_path / "hf"
    repo = hf / "hub" / "models--made-up-org--cached-model"
    rev = "0" * 40
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    (snap / "config.json").write_text('{"model_type": "llama", "hidden_size": 64, '
                                      '"num_hidden_layers": 2, "num_attention_heads": 4, '
                                      '"intermediate_size": 128, "vocab_size": 1000}')
    grid = tmp_path / "g.yaml"
    grid.write_text(GRID.format(model="made-up-org/cached-model"))
    proc = run_cli("run", str(grid), "--dry-run", "--store", str(tmp_path / "store"),
                   env={"HF_HOME": str(hf), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "every job can be placed" in proc.stdout
