"""The vLLM backend on the tiny model, through the real library, in the vLLM env.

The test process has no vLLM: a script runs in the vLLM venv's python (built by
`llem env build vllm`, the vllm_python fixture) and prints JSON, and the assertions run
here. The script also runs transformers' own greedy generate on the same model, so vLLM's
tokens are checked token for token, not just counted.
"""

from __future__ import annotations

import json
import os
import subprocess
from itertools import pairwise
from pathlib import Path

import pytest

from llem.envs.environments import llem_source_dir

MAX_NEW = 12

SCRIPT = r'''
import json, sys, time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llem.backends import GenerateSpec, LoadSpec, load_class

model_dir, max_new = sys.argv[1], int(sys.argv[2])
prompts = ["Explain why the sky is blue.", "Write a haiku about energy.",
           "Summarise: Ray schedules actors on GPUs and llem measures them carefully."]
long_prompt = " ".join(["energy latency tokens"] * 40)
trunc_to = 6

# transformers' own greedy decoding, one prompt at a time (no padding), float32
tok = AutoTokenizer.from_pretrained(model_dir)
hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
def hf_greedy(ids, n):
    x = torch.tensor([ids])
    with torch.inference_mode():
        y = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n,
                        do_sample=False, pad_token_id=tok.pad_token_id)
    return y[0, len(ids):].tolist()
hf_in = [tok(p)["input_ids"] for p in prompts]
hf_out = [hf_greedy(ids, max_new) for ids in hf_in]
trunc_ids = tok(long_prompt)["input_ids"][:trunc_to]
hf_trunc = hf_greedy(trunc_ids, 8)
del hf

t = time.perf_counter()
backend = load_class("vllm")(LoadSpec(model=model_dir, dtype="float32", seed=0,
                                      engine={"enforce_eager": True, "max_num_seqs": 5,
                                              "max_model_len": 1024,
                                              "enable_prefix_caching": False}))
init_s = time.perf_counter() - t
cfg = backend.llm.llm_engine.vllm_config
engine_cfg = {"max_num_seqs": cfg.scheduler_config.max_num_seqs,
              "max_model_len": cfg.model_config.max_model_len,
              "enforce_eager": cfg.model_config.enforce_eager,
              "enable_prefix_caching": cfg.cache_config.enable_prefix_caching,
              "dtype": str(cfg.model_config.dtype), "seed": cfg.model_config.seed}

# observe the token ids vLLM produced inside the backend's own calls
llm, engine = backend.llm, backend.llm.llm_engine
batch_ids, stream_ids = [], {}
orig_generate, orig_step = llm.generate, engine.step
def spy_generate(*a, **k):
    outs = orig_generate(*a, **k)
    batch_ids.extend(list(o.outputs[0].token_ids) for o in outs)
    return outs
def spy_step():
    outs = orig_step()
    for o in outs:
        stream_ids.setdefault(o.request_id, []).extend(o.outputs[0].token_ids)
    return outs
llm.generate, engine.step = spy_generate, spy_step

rec = lambda rs: [r.__dict__ for r in rs]
t = time.perf_counter()
batch = backend.generate(prompts, GenerateSpec(max_new_tokens=max_new))
batch_s = time.perf_counter() - t
t = time.perf_counter()
stream = backend.generate(prompts, GenerateSpec(max_new_tokens=max_new, streaming=True))
stream_s = time.perf_counter() - t
ours = [k for k in stream_ids if k.startswith("llem-")]  # LLM.generate steps too
stream_by_req = [stream_ids[k] for k in sorted(ours, key=lambda k: int(k.split("-")[1]))]
n_batch = len(batch_ids)
trunc = backend.generate([long_prompt], GenerateSpec(max_new_tokens=8, max_input_tokens=trunc_to))
sampled = backend.generate(prompts, GenerateSpec(max_new_tokens=max_new, min_new_tokens=max_new,
                                                 temperature=0.8, top_p=0.9, top_k=0, seed=1))
backend.close()
try:
    backend.generate(prompts, GenerateSpec(max_new_tokens=2))
    closed_error = None
except RuntimeError as e:
    closed_error = str(e)
print("LLEM_JSON " + json.dumps({
    "prompts": prompts, "hf_in": [len(i) for i in hf_in], "hf_out": hf_out,
    "hf_trunc": hf_trunc,
    "batch": rec(batch), "stream": rec(stream), "trunc": rec(trunc), "sampled": rec(sampled),
    "batch_ids": batch_ids[:n_batch], "stream_ids": stream_by_req,
    "trunc_ids": batch_ids[n_batch], "closed_error": closed_error,
    "engine_cfg": engine_cfg, "init_s": init_s, "batch_s": batch_s, "stream_s": stream_s}))
'''


@pytest.fixture(scope="module")
def result(tiny_model: Path, vllm_python: Path,
           tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run SCRIPT once in the vLLM venv; its JSON for all the tests of this module."""
    model = tiny_model
    tmp = tmp_path_factory.mktemp("vllm")
    (tmp / "check_vllm.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "RAY_ADDRESS")}
    env["PYTHONPATH"] = str(llem_source_dir())  # the venv has no llem: the workers' way
    env.update(VLLM_ENABLE_V1_MULTIPROCESSING="0",  # engine in-process: no spawn, 2 s init
               VLLM_CPU_KVCACHE_SPACE="1",  # GiB
               VLLM_CACHE_ROOT=str(tmp / "vllm-cache"), HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([str(vllm_python), str(tmp / "check_vllm.py"), str(model), str(MAX_NEW)],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("LLEM_JSON ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads(lines[-1].removeprefix("LLEM_JSON "))


def test_batch_counts_and_window(result: dict) -> None:
    batch = result["batch"]
    assert [r["input_tokens"] for r in batch] == result["hf_in"]
    for r in batch:
        assert 0 < r["output_tokens"] <= MAX_NEW
        assert r["token_times_s"] is None  # offline batch: no per-token arrival observed
        assert r["start_s"] < r["end_s"]
    assert len({(r["start_s"], r["end_s"]) for r in batch}) == 1  # one batch window
    assert {"queue_s", "prefill_s", "decode_s"} <= set(batch[0]["metrics"])
    assert all(v >= 0 for r in batch for v in r["metrics"].values())


def test_streaming_token_times(result: dict) -> None:
    stream = result["stream"]
    assert [r["input_tokens"] for r in stream] == result["hf_in"]
    for r in stream:
        times = r["token_times_s"]
        assert 0 < r["output_tokens"] <= MAX_NEW
        assert times is not None and len(times) == r["output_tokens"]
        assert all(a <= b for a, b in pairwise(times))
        assert r["start_s"] < times[0] and times[-1] <= r["end_s"]
        assert r["end_s"] == times[-1]  # the final output carries the last token


def test_greedy_matches_transformers(result: dict) -> None:
    """float32 greedy: vLLM (batch and streaming) == transformers, token for token."""
    assert result["batch_ids"] == result["hf_out"]
    assert result["stream_ids"] == result["hf_out"]
    assert [r["output_tokens"] for r in result["batch"]] == [len(t) for t in result["hf_out"]]
    assert [r["output_tokens"] for r in result["stream"]] == [len(t) for t in result["hf_out"]]


def test_greedy_matches_transformers_of_another_environment(result: dict,
                                                            tiny_model: Path) -> None:
    """The same check across environments: vLLM in its venv (transformers 5.19) against
    transformers' greedy generate in this test's own environment (the driver's stack)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    ours = []
    for prompt in result["prompts"]:
        x = torch.tensor([tok(prompt)["input_ids"]])
        with torch.inference_mode():
            y = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=MAX_NEW,
                               do_sample=False, pad_token_id=tok.pad_token_id)
        ours.append(y[0, x.shape[1]:].tolist())
    assert [len(ids) for ids in ours] and ours == result["batch_ids"] == result["stream_ids"]
    assert len({tuple(ids) for ids in ours}) == len(ours)  # outputs differ: not trivial


def test_truncation_keeps_first_tokens(result: dict) -> None:
    (r,) = result["trunc"]
    assert r["input_tokens"] == 6
    assert result["trunc_ids"] == result["hf_trunc"]  # same as greedy on the first 6 tokens


def test_sampling_params_and_close(result: dict) -> None:
    assert [r["output_tokens"] for r in result["sampled"]] == [MAX_NEW] * 3  # min_new_tokens
    assert result["closed_error"] and "closed" in result["closed_error"]


def test_engine_args_reach_vllm_untouched(result: dict) -> None:
    """The grid's vllm: section is LLM(**engine_args): vLLM's own config shows each value."""
    assert result["engine_cfg"] == {"max_num_seqs": 5, "max_model_len": 1024,
                                    "enforce_eager": True, "enable_prefix_caching": False,
                                    "dtype": "torch.float32", "seed": 0}


def test_vllm_request_stats_become_durations_or_nothing() -> None:
    """vLLM's RequestStateStats (engine-core monotonic stamps) -> seconds; a stamp vLLM did
    not record (0.0, e.g. disable_log_stats=True) leaves its durations out (null columns),
    and no stats at all (RequestOutput.metrics None) gives none. Runs without vLLM."""
    from types import SimpleNamespace

    from llem.backends.vllm.backend import _durations

    full = SimpleNamespace(queued_ts=10.0, scheduled_ts=10.5, first_token_ts=11.0,
                           last_token_ts=13.0, first_token_latency=1.2,
                           num_generation_tokens=5, num_preemptions=0)
    assert _durations(full) == {"queue_s": 0.5, "prefill_s": 0.5, "decode_s": 2.0,
                                "inference_s": 2.5, "ttft_s": 1.2, "tpot_s": 0.5,
                                "preemptions": 0.0}
    partial = SimpleNamespace(queued_ts=0.0, scheduled_ts=0.0, first_token_ts=11.0,
                              last_token_ts=13.0, first_token_latency=0.0,
                              num_generation_tokens=1)
    assert _durations(partial) == {"decode_s": 2.0}  # one token: no time per output token
    assert _durations(None) == {}


def test_engine_kwargs_pass_through_over_few_defaults() -> None:
    """What LLM(...) receives, built without vLLM: grid values win, the model is the load
    key's, several GPUs get tensor parallelism over vLLM's own worker processes."""
    from llem.backends import LoadSpec
    from llem.backends.vllm.backend import engine_kwargs

    spec = LoadSpec(model="m", dtype="bfloat16", gpus=4, seed=3, engine={
        "max_num_seqs": 64, "speculative_config": {"method": "ngram", "num_speculative_tokens": 4},
        "kv_cache_dtype": "fp8", "model": "other", "seed": 9})
    assert engine_kwargs(spec) == {
        "model": "m", "dtype": "bfloat16", "seed": 9, "disable_log_stats": False,
        "tensor_parallel_size": 4, "distributed_executor_backend": "mp", "max_num_seqs": 64,
        "speculative_config": {"method": "ngram", "num_speculative_tokens": 4},
        "kv_cache_dtype": "fp8"}
    assert engine_kwargs(LoadSpec(model="m", dtype="auto")) == {
        "model": "m", "dtype": "auto", "seed": 0, "disable_log_stats": False}
    one = engine_kwargs(LoadSpec(model="m", dtype="auto", gpus=1,
                                 engine={"disable_log_stats": True}))
    assert one["tensor_parallel_size"] == 1 and "distributed_executor_backend" not in one
    assert one["disable_log_stats"] is True  # then vLLM records no stats: null columns
