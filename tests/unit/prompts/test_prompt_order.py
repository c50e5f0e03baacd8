"""Prompts in the file's order (dataset.order: file), JSONL metadata lines skipped and
counted, and the AI Energy Score prompts as a named source (a located one-line error where
the hub cannot be reached)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llem.config.models import Dataset
from llem.prompts.dataset import NAMED, hf_source, load_prompts
from llem.prompts.files import Prompt, load_file, select
from tests.support.cli import run_cli


def _pool(n: int) -> list[Prompt]:
    return [Prompt(f"p{i}", "t", f"text {i}") for i in range(n)]


def test_file_order_takes_the_first_n_and_cycles() -> None:
    assert [p.id for p in select(_pool(5), 3, order="file")] == ["p0", "p1", "p2"]
    assert [p.id for p in select(_pool(2), 5, seed=9, order="file")] == \
        ["p0", "p1", "p0", "p1", "p0"]
    sampled = [p.id for p in select(_pool(50), 3, seed=1)]
    assert sampled == [p.id for p in select(_pool(50), 3, seed=1, order="sample")]
    assert sampled != ["p0", "p1", "p2"]
    with pytest.raises(ValueError, match="unknown prompt order"):
        select(_pool(2), 1, order="first")


def test_file_order_through_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("".join(f"line {i}\n" for i in range(10)))
    ds = Dataset(source="file", path="p.txt", num_prompts=3, order="file")
    assert load_prompts(ds, tmp_path) == ["line 0", "line 1", "line 2"]


def test_the_default_order_keeps_every_job_id() -> None:
    assert "order" not in Dataset().model_dump()
    assert Dataset(order="file").model_dump()["order"] == "file"


def test_jsonl_metadata_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"_source": "export", "_created": "2025-01-01"}) + "\n" +
                 json.dumps({"prompt": "hello"}) + "\n" + json.dumps({"_note": "x"}) + "\n")
    prompts = load_file(f)
    assert [p.text for p in prompts] == ["hello"] and prompts.skipped == 2
    only = tmp_path / "only.jsonl"
    only.write_text(json.dumps({"_source": "export"}) + "\n")
    with pytest.raises(ValueError, match=r"no prompts \(only 1 metadata lines\)"):
        load_file(only)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"_source": "x", "title": "no prompt"}) + "\n")
    with pytest.raises(ValueError, match="no non-empty string"):
        load_file(bad)


def test_ai_energy_score_is_a_named_hub_source() -> None:
    assert hf_source(Dataset(source="ai_energy_score")) == \
        ("AIEnergyScore/text_generation", "train", "text") == NAMED["ai_energy_score"]


def test_ai_energy_score_offline_is_one_located_line(tmp_path: Path) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text("name: aes\nmodels: [llem:tiny]\nbackends: [noop]\n"
                    "dataset: {source: ai_energy_score, num_prompts: 8}\n")
    r = run_cli("run", str(grid), "--store", str(tmp_path / "s"),
                env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                     "HF_HOME": str(tmp_path / "hf")})
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: {grid}:4: 'dataset.source': cannot load the "
                           "ai_energy_score prompts (HF dataset AIEnergyScore/text_generation)"
                           " (split train): "), line
    assert "HF_HUB_OFFLINE=1 and not in the cache" in line and ".jsonl file" in line
    assert not (tmp_path / "s").exists()
