"""The transformers backend on the tiny model, through the real library, inline (no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem.backends import GenerateSpec, LoadSpec
from llem.config.grid import iter_jobs
from llem.config.load import load_text
from llem.harness.runner import JobRunner


@pytest.fixture(scope="module")
def backend(tiny_model: Path):
    from llem.backends.transformers.backend import TransformersBackend

    b = TransformersBackend(LoadSpec(model=str(tiny_model), dtype="float32"))
    yield b
    b.close()


PROMPTS = ["Explain why the sky is blue.", "Write a haiku about energy.",
           "Summarise: Ray schedules actors on GPUs and llem measures them carefully."]


def test_batch_matches_one_by_one(backend) -> None:
    """Left padding done right: a batched greedy row equals the same prompt alone."""
    import torch

    spec = GenerateSpec(max_new_tokens=12)
    batch = backend.generate(PROMPTS, spec)
    assert [r.output_tokens for r in batch] == [min(12, r.output_tokens) for r in batch]
    tok = backend.tokenizer
    for prompt, rec in zip(PROMPTS, batch, strict=True):
        enc = tok([prompt], return_tensors="pt")
        with torch.inference_mode():
            alone = backend.model.generate(**enc, max_new_tokens=12, do_sample=False)
        assert rec.input_tokens == enc["input_ids"].shape[1]
        n_alone = backend._length(alone[0, enc["input_ids"].shape[1]:].tolist())
        assert rec.output_tokens == n_alone
    assert all(r.token_times_s is None for r in batch)  # not streaming: no per-token times


def test_streaming_times_are_per_token(backend) -> None:
    recs = backend.generate(PROMPTS, GenerateSpec(max_new_tokens=16, streaming=True))
    for r in recs:
        assert r.token_times_s is not None and len(r.token_times_s) == r.output_tokens
        assert r.start_s < r.token_times_s[0]
        assert all(a <= b for a, b in zip(r.token_times_s, r.token_times_s[1:]))
        assert r.end_s == r.token_times_s[-1]
    # tokens of one batch arrive step by step: the k-th tokens share one stamp
    n = min(r.output_tokens for r in recs)
    for k in range(n):
        assert len({r.token_times_s[k] for r in recs}) == 1


def test_truncation_and_sampling_seed(backend) -> None:
    long = " ".join(["word"] * 200)
    rec = backend.generate([long], GenerateSpec(max_new_tokens=4, max_input_tokens=32))[0]
    assert rec.input_tokens == 32
    spec = GenerateSpec(max_new_tokens=8, temperature=1.0, top_p=0.9, seed=7)
    a = backend.generate(PROMPTS[:1], spec)
    b = backend.generate(PROMPTS[:1], spec)
    assert a[0].output_tokens == b[0].output_tokens


def test_harness_streaming_row(tiny_model: Path) -> None:
    """The harness turns measured token times into TTFT/ITL; none are invented."""
    loaded = load_text(f"""
name: h
models: [{tiny_model}]
backends: [transformers]
grid: {{batch_size: 2, max_new_tokens: 8, dtype: float32, streaming: [false, true]}}
dataset: {{num_prompts: 4}}
measurement: {{warmup_requests: 2}}
""")
    runner = JobRunner("transformers", {"model": str(tiny_model), "dtype": "float32",
                                        "engine": {}, "gpus": 0}, 0)
    rows = {}
    for job in iter_jobs(loaded):
        res = runner.run(job.payload(), PROMPTS + PROMPTS[:1])
        assert res.run.status == "ok", res.run.error
        rows[job.point.streaming] = res
    assert runner.loads == 1
    plain, streamed = rows[False].run, rows[True].run
    assert plain.ttft_p50_s is None and plain.itl_p50_s is None
    assert streamed.ttft_p50_s > 0 and streamed.itl_p50_s > 0
    assert streamed.num_requests == 4 and streamed.warmup_requests == 2
    assert plain.energy_j is None and "CPU" in plain.energy_unavailable
    req = rows[True].requests[0]
    assert len(req["token_times_s"]) == req["output_tokens"]
    assert req["ttft_s"] == pytest.approx(req["token_times_s"][0] - req["start_s"])
