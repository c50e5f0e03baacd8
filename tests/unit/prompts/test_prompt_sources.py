"""Prompt sources beyond the builtin set: Hugging Face datasets (a local dataset folder, read
by `datasets` offline, with the prompt column detected), a clear one-line error for a dataset
id that cannot be fetched, and input/output length policies recorded with each result."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llem.config.models import Dataset
from llem.errors import UserError
from llem.prompts.dataset import load_prompts
from tests.support.cli import run_cli


def dataset_dir(root: Path, name: str, rows: list[dict]) -> Path:
    d = root / name
    d.mkdir()
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def sharegpt(n: int) -> list[dict]:
    return [{"id": i, "conversations": [{"from": "human", "value": f"question {i}?"},
                                        {"from": "gpt", "value": f"answer {i}"}]}
            for i in range(n)]


def test_hf_columns_are_detected(tmp_path: Path, llem_cache: Path) -> None:
    chat = dataset_dir(tmp_path, "chat", sharegpt(6))
    got = load_prompts(Dataset(source="hf", path=str(chat), num_prompts=4), tmp_path)
    assert len(got) == 4 and all(t.startswith("question ") for t in got)
    qa = dataset_dir(tmp_path, "qa", [{"question": f"q{i}", "answer": "a"} for i in range(3)])
    assert sorted(load_prompts(Dataset(source="hf", path=str(qa), num_prompts=3), tmp_path)) \
        == ["q0", "q1", "q2"]
    odd = dataset_dir(tmp_path, "odd", [{"foo": f"f{i}", "bar": 1} for i in range(3)])
    with pytest.raises(UserError, match=r"has no text column \(columns: foo, bar\); set "
                                        r"dataset.column"):
        load_prompts(Dataset(source="hf", path=str(odd)), tmp_path)
    assert load_prompts(Dataset(source="hf", path=str(odd), column="foo", num_prompts=1),
                        tmp_path)[0].startswith("f")
    with pytest.raises(UserError, match="has no column 'nope'"):
        load_prompts(Dataset(source="hf", path=str(odd), column="nope"), tmp_path)


def test_an_unreachable_dataset_is_one_line_before_ray(tmp_path: Path) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text("name: hfx\nmodels: [llem:tiny]\n"
                    "dataset: {source: hf, path: llem-test/not-a-cached-dataset}\n")
    r = run_cli("run", str(grid), "--store", str(tmp_path / "s"),
                env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: {grid}:3: 'dataset.path': cannot load HF dataset "
                           "'llem-test/not-a-cached-dataset' (split train): "), line
    assert "HF_HUB_OFFLINE=1 and not in the cache" in line and "dataset.source: file" in line
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_hf_prompts_and_length_policies_through_a_run(tmp_path: Path, llem_cache: Path) -> None:
    """Every prompt padded (its own tokens repeated) to exactly 8 input tokens, every request
    decoding exactly 5 tokens; the policies are columns of the result."""
    chat = dataset_dir(tmp_path, "chat", sharegpt(5))
    grid = tmp_path / "g.yaml"
    grid.write_text(f"name: lengths\nmodels: [llem:tiny]\n"
                    f"grid: {{dtype: float32, batch_size: 3, max_input_tokens: 8, "
                    f"input_policy: pad, max_new_tokens: 5, output_policy: fixed}}\n"
                    f"dataset: {{source: hf, path: {chat}, num_prompts: 3}}\n"
                    f"measurement: {{warmup_requests: 0, thermal_gaps: false}}\n")
    r = run_cli("run", str(grid), "--store", str(tmp_path / "s"), "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    (f,) = (tmp_path / "s" / "runs").rglob("*.parquet")
    (row,) = pq.read_table(f).to_pylist()
    assert (row["dataset_source"], row["dataset_path"]) == ("hf", str(chat))
    assert (row["input_policy"], row["output_policy"], row["max_input_tokens"]) == \
        ("pad", "fixed", 8)
    assert (row["num_requests"], row["input_tokens"], row["output_tokens"]) == (3, 24, 15)
    (req,) = (tmp_path / "s" / "requests").rglob("*.parquet")
    reqs = pq.read_table(req).to_pylist()
    assert {(q["input_tokens"], q["output_tokens"]) for q in reqs} == {(8, 5)}


def test_a_prompt_file_over_the_limit_is_refused_before_it_is_read(tmp_path: Path,
                                                                   monkeypatch) -> None:
    """A huge prompt file is one located error, not gigabytes read by a dry run (the limit
    is lowered here so the test writes a small file)."""
    from llem.prompts import dataset as ds_module

    monkeypatch.setattr(ds_module, "MAX_FILE_BYTES", 1024)
    big = tmp_path / "big.jsonl"
    big.write_text('{"prompt": "a long prompt"}\n' * 100)
    with pytest.raises(ds_module.FileProblem, match=r"over the 0 MiB limit"):
        ds_module.file_pool(Dataset(source="file", path=str(big)), tmp_path)
