"""Measurement overhead on the CPU: llem's tokens/s vs a bare model.generate loop.

Both sides run in this process on the same loaded tiny model (llem's transformers backend
holds it): llem through its harness (JobRunner.run: warmup, energy window, result rows),
the bare loop as a user would write it (tokenizer + model.generate over the same batches,
timed with perf_counter). Every request decodes exactly max_new_tokens (output_policy
fixed), so both sides do the same work. The sides alternate, several rounds, and the
medians are compared, so a busy machine slows both alike.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.figures import Figure

GRID = """
name: bench-overhead
models: [{model}]
backends: [transformers]
grid:
  dtype: float32
  batch_size: {batch}
  max_new_tokens: {tokens}
  output_policy: fixed
dataset: {{num_prompts: {prompts}}}
measurement: {{warmup_requests: 0, thermal_gaps: false}}
"""


def bare_loop(backend: Any, prompts: list[str], batch: int,
              tokens: int) -> tuple[float, float]:
    """(tokens/s, tokens per CPU second) of the plain loop: tokenize, generate, count."""
    import torch

    model, tok = backend.model, backend.tokenizer
    out_tokens = 0
    c0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(0, len(prompts), batch):
        enc = tok(prompts[i:i + batch], return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=tokens, min_new_tokens=tokens,
                                 do_sample=False, pad_token_id=tok.pad_token_id)
        out_tokens += (out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0]
    wall = time.perf_counter() - t0
    return out_tokens / wall, out_tokens / (time.process_time() - c0)


def run(rounds: int = 15, batch: int = 4, tokens: int = 16, prompts: int = 16,
        threads: int = 1) -> list[Figure]:
    import torch

    from llem.config.grid import iter_jobs
    from llem.config.load import load_text
    from llem.harness.runner import JobRunner
    from llem.models.tiny import build_tiny_model
    from llem.prompts.dataset import load_prompts

    torch.set_num_threads(threads)  # both sides alike; fewer threads, less contention noise
    tmp = Path(tempfile.mkdtemp(prefix="llem-bench-overhead-"))
    os.environ.setdefault("LLEM_CACHE", str(tmp / "cache"))
    model = build_tiny_model(tmp / "model", seed=1)
    loaded = load_text(GRID.format(model=model, batch=batch, tokens=tokens, prompts=prompts))
    job = next(iter_jobs(loaded))
    texts = load_prompts(job.point.dataset, tmp)
    p = job.point
    runner = JobRunner(p.backend, {"model": p.model, "dtype": p.dtype,
                                   "engine": dict(p.engine), "gpus": 0}, 0)
    backend = runner.ensure_loaded()
    runner.run(job.payload(), texts)  # warm both sides up (same model, same batches)
    bare_loop(backend, texts, batch, tokens)
    llem: list[float] = []
    llem_cpu: list[float] = []
    bare: list[float] = []
    bare_cpu: list[float] = []
    for i in range(rounds):
        for side in ("llem", "bare") if i % 2 == 0 else ("bare", "llem"):  # ABBA: no order bias
            if side == "llem":
                c0 = time.process_time()
                result = runner.run(job.payload(), texts)
                cpu = time.process_time() - c0
                run = result.run
                assert run.status == "ok", run.error
                llem.append(run.tokens_per_s)
                llem_cpu.append(run.output_tokens / cpu)
            else:
                wall, per_cpu = bare_loop(backend, texts, batch, tokens)
                bare.append(wall)
                bare_cpu.append(per_cpu)
    runner.close()
    med = statistics.median
    print(f"tiny model on CPU, batch {batch}, {tokens} new tokens, {prompts} prompts, "
          f"{threads} torch thread(s), {rounds} alternating rounds")
    print(f"  tokens/s (wall):  llem {med(llem):.0f} vs bare {med(bare):.0f} "
          f"(llem {[round(x) for x in llem]}, bare {[round(x) for x in bare]})")
    print(f"  tokens/CPU-s:     llem {med(llem_cpu):.0f} vs bare {med(bare_cpu):.0f} "
          "(llem's whole job: harness, window, result rows)")
    note = f"median of {rounds}"
    return [Figure("6 overhead", "tokens/s llem / bare generate loop (CPU, wall)", med(llem),
                   med(bare), "tok/s", "llem", "bare", ">= 0.98", note),
            Figure("6 overhead", "tokens per CPU-s, llem whole job / bare loop", med(llem_cpu),
                   med(bare_cpu), "tok/s", "llem", "bare", ">= 0.98",
                   note + "; robust to a busy machine")]


def main() -> list[Figure]:
    return run()


if __name__ == "__main__":
    main()
