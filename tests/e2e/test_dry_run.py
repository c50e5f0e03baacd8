"""`llem run --dry-run`: counts and memory checked against a hand count for a Llama-3.1-8B
shaped config (only its config.json exists: a dry run loads nothing), placement against a
described cluster, and nothing run or written. Planned on this machine (no GPU, no cluster
given: a login node), GPU placement is noted as not checked and the dry run exits 0, while a
real run here is refused before Ray starts; placement that can be checked (CPUs here, GPUs
of a cluster given by --address) is still refused."""

from __future__ import annotations

import json
import os
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
        assert placed == "not checked"  # this machine has no GPU, no cluster was given
    assert f"{weights['float32'] + kv[('float32', 32)]:.2f} GiB" == "35.92 GiB"
    assert "GPU placement not checked: this machine has no GPU and no Ray cluster was given; "\
        "the jobs need 1 GPU each" in out
    assert "never be placed" not in out and "every job can be placed" not in out
    assert r.returncode == 0, r.stderr  # nothing it checked is wrong
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
    assert r.returncode == 0, r.stderr  # no GPU here: GPU placement is not checked
    plan = json.loads(r.stdout)
    assert (plan["points"], plan["cycles"], plan["jobs"], plan["never_placed_jobs"],
            plan["placement_not_checked_jobs"]) == (4, 3, 12, 0, 12)
    assert any(n.startswith("GPU placement not checked") for n in plan["not_checked"])
    assert [(g["dtype"], g["points"], g["jobs"]) for g in plan["load_groups"]] == \
        [("bfloat16", 2, 6), ("float32", 2, 6)]
    for p in plan["plan"]:
        n = 2 if p["dtype"] == "bfloat16" else 4
        assert p["params"] == PARAMS and p["weights_bytes_per_gpu"] == PARAMS * n
        assert p["kv_tokens"] == p["batch_size"] * (512 + 256)
        assert p["kv_cache_bytes_per_gpu"] == p["kv_tokens"] * 2 * L * NKV * HEAD * n
        assert p["never_placed"] is None and p["placement_checked"] is False
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


def test_a_run_of_gpu_jobs_on_this_machine_is_refused_before_ray_starts(tmp_path: Path) -> None:
    """What the dry run leaves unchecked here, a real run here refuses: one line with the
    grid's line and the fix, exit 2, before Ray starts (it says when it starts Ray)."""
    grid = write_grid(tmp_path)
    r = run_cli("run", str(grid), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "sized.yaml:10: 'resources.gpus_per_job': jobs of " in line
    assert "cannot run on this machine (0 GPUs, " in line
    assert "needs 1 GPU on one node; this machine has no GPU" in line
    assert "set resources.gpus_per_job: 0 to run on the CPU, or give --address" in line
    assert "Traceback" not in r.stderr and "starting Ray" not in r.stderr and r.stdout == ""
    assert not (tmp_path / "never-written").exists()


def test_placement_this_machine_can_check_is_still_refused(tmp_path: Path) -> None:
    """A CPU job needing more CPUs than this machine has can be checked here: the dry run
    refuses it (exit 1) and a run refuses it before Ray starts (exit 2)."""
    write_grid(tmp_path)
    grid = tmp_path / "cpus.yaml"
    grid.write_text(GRID.replace("{gpus_per_job: 1}", "{gpus_per_job: 0, cpus_per_job: 4096}"))
    r = run_cli("run", str(grid), "--dry-run", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    out = " ".join(r.stdout.split())
    cpus = f"{float(os.cpu_count() or 1):g}"
    assert "12 jobs can never be placed" in out
    assert f"needs 4096 CPUs; the largest node has {cpus}" in out
    assert "GPU placement not checked" not in out
    r = run_cli("run", str(grid), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert f"needs 4096 CPUs; this machine has {cpus} (lower it, or give --address" in line
    assert "starting Ray" not in r.stderr


@pytest.mark.slow
def test_gpu_placement_is_checked_on_a_cluster_given(ray_gpus, tmp_path: Path) -> None:
    """--address of a Ray cluster (one node, 2 declared GPUs): GPU placement is checked there,
    though this machine has no GPU; 4 GPUs a job is refused, 1 GPU a job is placed."""
    grid = write_grid(tmp_path)
    cluster = ["--address", ray_gpus.get_runtime_context().gcs_address]
    env = {"RAY_AUTH_MODE": os.environ["RAY_AUTH_MODE"]}  # the mode this cluster runs in
    r = run_cli("run", str(grid), "--dry-run", *cluster, "--gpus", "4", cwd=tmp_path, env=env)
    assert r.returncode == 1, r.stderr
    out = " ".join(r.stdout.split())
    assert "12 jobs can never be placed" in out
    assert "needs 4 GPUs on one node; the largest node has 2" in out
    assert "GPU placement not checked" not in out
    r = run_cli("run", str(grid), "--dry-run", *cluster, "--gpus", "1", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "every job can be placed" in " ".join(r.stdout.split())
    assert "calibration" not in r.stdout  # no point asks for it
    grid.write_text(grid.read_text() + "measurement: {calibrate: true}\n")
    r = run_cli("run", str(grid), "--dry-run", *cluster, "--gpus", "1", "--json", cwd=tmp_path,
                env=env)
    cal = json.loads(r.stdout)["calibration"]
    assert r.returncode == 0 and cal["gpu_sets"] == 2, r.stderr
    assert "runs once on 2 GPU sets of 1 GPU here" in cal["text"]


def test_dry_run_says_what_calibration_adds(tmp_path: Path) -> None:
    """measurement.calibrate costs each session one reference job per GPU set: the dry run
    names it (here, with no GPU and no cluster, the sets are not known), and says when no
    configuration uses a GPU."""
    grid = write_grid(tmp_path)
    grid.write_text(grid.read_text() + "measurement: {calibrate: true}\n")
    r = run_cli("run", str(grid), "--dry-run", cwd=tmp_path)
    out = " ".join(r.stdout.split())
    assert r.returncode == 0, r.stderr
    ref = re.search(r"calibration \(measurement.calibrate\): before the first job of each "
                    r"session that runs one, reference job ([0-9a-f]{16}) \(transformers, "
                    r"\S*llama8b\) runs once on every GPU set of the cluster it runs on", out)
    assert ref, out
    r = run_cli("run", str(grid), "--dry-run", "--gpus", "0", "--json", cwd=tmp_path)
    assert json.loads(r.stdout)["calibration"]["text"] == (
        "calibration: no configuration uses a GPU, nothing to calibrate")


def test_a_grid_too_large_to_plan_point_by_point_is_one_line(tmp_path: Path) -> None:
    """max_points may be raised to 10,000,000, but the dry run plans each point (~65 GB at
    that size): past 200,000 it says so in one line, exit 2, before walking any point."""
    axis = list(range(60))
    grid = tmp_path / "big.yaml"
    grid.write_text(f"name: big\nmodels: [m]\nbackends: [noop]\nmax_points: 1000000\n"
                    f"grid: {{temperature: 0.5, seed: {axis}, top_k: {axis}, "
                    f"max_new_tokens: {axis[1:]}}}\n")
    r = run_cli("run", str(grid), "--dry-run", cwd=tmp_path)
    assert r.returncode == 2 and not r.stdout, r.stdout
    assert r.stderr.strip() == (
        "error: big.yaml: the dry run plans each point (memory, placement): 212,400 points "
        "is over its 200,000 (about 30 s and 1.3 GB); narrow the grid (or include/exclude) "
        "to see a plan, or run it: `llem run` walks its points lazily")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.yaml"]


def test_points_that_differ_only_in_an_alternative_are_told_apart(tiny_model: Path,
                                                                   tmp_path: Path) -> None:
    """A named group's alternatives (and an experiment) differ in no column of their own:
    the points table names the settings that tell them apart, as `llem compare` does."""
    grid = tmp_path / "g.yaml"
    grid.write_text(f"""\
name: alts
models: [{tiny_model}]
backends: [transformers]
grid:
  batch_size: [1, 4]
  max_new_tokens: 8
  decoding:
    - {{preset: deterministic}}
    - {{temperature: [0.5, 0.9], top_p: 0.9}}
experiments:
  - {{batch_size: 16, measurement.sample_hz: 50}}
store: ./never-written
""")
    r = run_cli("run", str(grid), "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [re.split(r"\s{2,}", line.strip()) for line in r.stdout.splitlines()]
    assert ["group", "batch", "tokens in+out", "GPUs", "settings", "weights", "KV cache",
            "memory/GPU", "placed"] in rows
    settings = [(row[1], row[4]) for row in rows
                if len(row) == 9 and row[0] == "1" and row[1].isdigit()]
    assert len(settings) == len(set(settings)) == 7, settings  # 2 x 3 points + 1 experiment
    assert ("1", "sample_hz=10, preset=deterministic, temperature=0, top_p=1") in settings
    assert ("4", "sample_hz=10, preset=null, temperature=0.9, top_p=0.9") in settings
    assert ("16", "sample_hz=50, preset=null, temperature=0, top_p=1") in settings
    assert not (tmp_path / "never-written").exists()
