"""`llem run --dry-run`: counts and memory checked against a hand count for a Llama-3.1-8B
shaped config (only its config.json exists: a dry run loads nothing), placement against a
described cluster, and nothing run or written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llem.config.load import load_campaign
from llem.models.memory import estimate
from llem.models.shape import shape_of
from llem.scheduler.plan import Node, make_plan
from tests.support.cli import run_cli

# Llama-3.1-8B's published shape.
V, H, L, NH, NKV, INTER = 128256, 4096, 32, 32, 8, 14336
CONFIG = {"model_type": "llama", "vocab_size": V, "hidden_size": H, "num_hidden_layers": L,
          "num_attention_heads": NH, "num_key_value_heads": NKV, "intermediate_size": INTER,
          "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
HEAD = H // NH  # 128
# By hand: embeddings + untied head; per layer q, k, v, o, gated MLP (3 matrices), 2 norms;
# the final norm.
PER_LAYER = H * H + 2 * H * (NKV * HEAD) + H * H + 3 * H * INTER + 2 * H
PARAMS = 2 * V * H + L * PER_LAYER + H
KV_PER_TOKEN_BF16 = 2 * L * NKV * HEAD * 2  # K and V, every layer, 2 bytes: 128 KiB
GIB = 2**30

GRID = """\
name: sized
models: [./llama8b]
backends: [transformers]
cycles: 3
grid:
  dtype: [bfloat16, float32]
  batch_size: [8, 32]
  max_input_tokens: 512
  max_new_tokens: 256
resources: {gpus_per_job: 1}
store: ./never-written
"""


def write_grid(tmp_path: Path) -> Path:
    (tmp_path / "llama8b").mkdir()
    (tmp_path / "llama8b" / "config.json").write_text(json.dumps(CONFIG))
    grid = tmp_path / "sized.yaml"
    grid.write_text(GRID)
    return grid


def test_parameter_and_kv_count_match_the_hand_count() -> None:
    shape = shape_of(CONFIG)
    assert PARAMS == 8_030_261_248 == shape.params()  # the published 8.03B
    assert KV_PER_TOKEN_BF16 == 131072 == shape.kv_bytes_per_token(2)
    e = estimate(shape, dtype="auto", batch_size=32, input_tokens=512, output_tokens=256)
    assert e.dtype == "bfloat16" and e.tokens == 32 * 768
    assert e.weights_bytes == PARAMS * 2
    assert e.kv_bytes == 32 * 768 * KV_PER_TOKEN_BF16 == 3 * GIB
    tp2 = estimate(shape, dtype="float32", batch_size=8, input_tokens=512, output_tokens=256,
                   gpus=2)
    assert tp2.weights_bytes == PARAMS * 4 / 2 and tp2.kv_bytes == 8 * 768 * 131072 * 2 / 2
    q4 = estimate(shape, dtype="bfloat16", batch_size=1, input_tokens=0, output_tokens=1,
                  quantization="bnb-4bit")
    linear = L * (H * H * 2 + 2 * H * NKV * HEAD + 3 * H * INTER)
    assert q4.weights_bytes == linear * 0.5 + (PARAMS - linear) * 2


def test_dry_run_prints_counts_groups_and_memory_and_writes_nothing(tmp_path: Path) -> None:
    grid = write_grid(tmp_path)
    r = run_cli("run", str(grid), "--dry-run", cwd=tmp_path)
    out = " ".join(r.stdout.split())
    # 2 dtypes x 2 batch sizes = 4 points x 3 cycles = 12 jobs; dtype is a load field: 2 groups
    assert "4 points x 3 cycles = 12 jobs, order interleaved, in 2 load groups" in out
    weights = {"bfloat16": PARAMS * 2 / GIB, "float32": PARAMS * 4 / GIB}  # 14.96, 29.91
    kv = {(d, b): b * (512 + 256) * 2 * L * NKV * HEAD * n / GIB
          for d, n in (("bfloat16", 2), ("float32", 4)) for b in (8, 32)}
    rows = [re.split(r"\s{2,}", line.strip()) for line in r.stdout.splitlines()]  # plain
    points = [row for row in rows if len(row) == 8 and row[0] in ("1", "2")]
    assert len(points) == 4
    for group, batch, tokens, gpus, w, k, total, placed in points:
        dtype = "bfloat16" if group == "1" else "float32"
        assert tokens == "512+256" and gpus == "1"
        assert w == f"{weights[dtype]:.2f} GiB"
        kv_gib = kv[(dtype, int(batch))]
        assert k == (f"{kv_gib:.2f} GiB" if kv_gib >= 1 else f"{kv_gib * 1024:.2f} MiB")
        assert total == f"{weights[dtype] + kv_gib:.2f} GiB"
        assert placed == "no"  # this machine has no GPU
    assert f"{weights['float32'] + kv[('float32', 32)]:.2f} GiB" == "35.92 GiB"
    assert "12 jobs can never be placed" in out
    assert "needs 1 GPU on one node; the cluster has no GPU" in out
    assert r.returncode == 1  # some job can never be placed
    assert not (tmp_path / "never-written").exists()


def test_placement_against_the_gpus_a_cluster_reports(tmp_path: Path) -> None:
    """Two 24 GB L4s: bf16 fits on one, fp32 (31.42 / 35.92 GiB) on none; with 2-GPU tensor
    parallelism each GPU holds half and fp32 fits."""
    grid = write_grid(tmp_path)
    loaded = load_campaign(grid)
    l4 = 23034 * 2**20
    nodes = [Node("n1", 2, [l4, l4], ["NVIDIA L4", "NVIDIA L4"], 16.0)]
    plan = make_plan(loaded, nodes, lambda ds: None)
    placed = {(p.point.dtype, p.point.batch_size): p.unplaceable for p in plan.points}
    assert placed[("bfloat16", 8)] is None and placed[("bfloat16", 32)] is None
    assert placed[("float32", 8)] == "needs 31.42 GiB per GPU; the largest GPU has 22.49 GiB"
    assert placed[("float32", 32)] == "needs 35.92 GiB per GPU; the largest GPU has 22.49 GiB"
    tp = load_campaign(grid, {"resources.gpus_per_job": 2})
    assert all(p.unplaceable is None for p in make_plan(tp, nodes, lambda ds: None).points)
    three = load_campaign(grid, {"resources.gpus_per_job": 3})
    (p, *_) = make_plan(three, nodes, lambda ds: None).points
    assert p.unplaceable == "needs 3 GPUs on one node; the largest node has 2"
    h100 = load_campaign(grid, {"resources.accelerator_type": "H100"})
    (p, *_) = make_plan(h100, nodes, lambda ds: None).points
    assert p.unplaceable == "needs accelerator_type H100; no node has one"


def test_dry_run_of_a_one_line_run_and_of_a_bad_grid(tmp_path: Path) -> None:
    quick = ["run", "--model", "llem:tiny", "-n", "4", "--batch-size", "2", "--cycles", "2",
             "--max-new-tokens", "2", "--store", str(tmp_path / "s")]
    r = run_cli(*quick, "--dry-run")
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "1 point x 2 cycles = 2 jobs" in out and "every job can be placed" in out
    assert "0 of 2 jobs already done (status ok); a run skips them and runs 2" in out
    assert not (tmp_path / "s").exists()
    write_grid(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(GRID.replace("batch_size: [8, 32]", "batch_size: [8, 0]"))
    r = run_cli("run", str(bad), "--dry-run")
    assert r.returncode == 2 and "batch_size" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


@pytest.mark.slow
def test_dry_run_counts_what_the_store_already_holds(tmp_path: Path, llem_cache: Path) -> None:
    quick = ["run", "--model", "llem:tiny", "-n", "2", "--batch-size", "2", "--max-new-tokens",
             "2", "--no-gaps", "--store", str(tmp_path / "s")]
    assert run_cli(*quick, "--quiet").returncode == 0
    before = sorted(p.name for p in (tmp_path / "s").rglob("*"))
    r = run_cli(*quick, "--cycles", "3", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "1 of 3 jobs already done (status ok); a run skips them and runs 2" in \
        " ".join(r.stdout.split())
    assert sorted(p.name for p in (tmp_path / "s").rglob("*")) == before  # nothing written


@pytest.mark.parametrize("family", ["llama", "llama-tied", "mistral", "qwen2", "qwen3", "gpt2"])
def test_parameter_count_matches_transformers_models(family: str) -> None:
    """The config-only count equals the parameters of the model transformers builds from the
    same config (small sizes; grouped-query attention where the family has it)."""
    import transformers as tr

    small = {"vocab_size": 1000, "hidden_size": 256, "intermediate_size": 512,
             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
    cfg = {
        "llama": lambda: tr.LlamaConfig(**small),
        "llama-tied": lambda: tr.LlamaConfig(**small, tie_word_embeddings=True),
        "mistral": lambda: tr.MistralConfig(**small),
        "qwen2": lambda: tr.Qwen2Config(**small, tie_word_embeddings=False),
        "qwen3": lambda: tr.Qwen3Config(**small, head_dim=128),
        "gpt2": lambda: tr.GPT2Config(vocab_size=1000, n_embd=256, n_layer=2, n_head=4,
                                      n_positions=128),
    }[family]()
    model = tr.AutoModelForCausalLM.from_config(cfg)
    real = sum(p.numel() for p in model.parameters())
    assert shape_of(json.loads(cfg.to_json_string())).params() == real


def test_dry_run_json_carries_the_exact_bytes(tmp_path: Path) -> None:
    grid = write_grid(tmp_path)
    r = run_cli("run", str(grid), "--dry-run", "--json", cwd=tmp_path)
    assert r.returncode == 1, r.stderr  # no GPU here: every job is never placed
    plan = json.loads(r.stdout)
    assert (plan["points"], plan["cycles"], plan["jobs"], plan["never_placed_jobs"]) == \
        (4, 3, 12, 12)
    assert [(g["dtype"], g["points"], g["jobs"]) for g in plan["load_groups"]] == \
        [("bfloat16", 2, 6), ("float32", 2, 6)]
    for p in plan["plan"]:
        n = 2 if p["dtype"] == "bfloat16" else 4
        assert p["params"] == PARAMS and p["weights_bytes_per_gpu"] == PARAMS * n
        assert p["kv_tokens"] == p["batch_size"] * (512 + 256)
        assert p["kv_cache_bytes_per_gpu"] == p["kv_tokens"] * 2 * L * NKV * HEAD * n
        assert p["never_placed"] == "needs 1 GPU on one node; the cluster has no GPU"
    assert plan["store"]["jobs_done"] == 0 and not (tmp_path / "never-written").exists()
    r = run_cli("run", str(grid), "--json", cwd=tmp_path)
    assert r.returncode == 2 and "--json goes with --dry-run" in r.stderr


def test_input_length_is_counted_with_the_models_tokenizer(tiny_model: Path,
                                                           tmp_path: Path) -> None:
    """llem:tiny's tokenizer is on this machine: the KV cache's input length is the longest
    selected prompt in its tokens (BOS included), as transformers' tokenizer counts it; a
    max_input_tokens below it caps it; without a tokenizer it is marked as estimated."""
    from transformers import AutoTokenizer

    from llem.config.load import load_text
    from llem.prompts.dataset import load_prompts

    grid = ("name: n\nmodels: [llem:tiny]\ndataset: {num_prompts: 16}\n"
            "grid: {max_input_tokens: [null, 40], max_new_tokens: 8}\n")
    loaded = load_text(grid, base_dir=tmp_path)
    plan = make_plan(loaded, [Node("n", 0, [], [], 2.0)],
                     lambda ds: load_prompts(ds, tmp_path))
    texts = load_prompts(plan.points[0].point.dataset, tmp_path)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    longest = max(len(tok(t)["input_ids"]) for t in texts)
    assert longest > 40
    inputs = {p.point.max_input_tokens: (p.estimate.tokens - 8, p.input_exact)
              for p in plan.points if p.estimate is not None}
    assert inputs == {None: (longest, True), 40: (40, True)}
    (tmp_path / "cfg-only").mkdir()
    (tmp_path / "cfg-only" / "config.json").write_text(json.dumps(CONFIG))
    elsewhere = load_text(grid.replace("llem:tiny", "./cfg-only"), base_dir=tmp_path)
    (p, _) = make_plan(elsewhere, [], lambda ds: load_prompts(ds, tmp_path)).points
    assert p.input_exact is False  # no tokenizer.json there: 3 characters a token
