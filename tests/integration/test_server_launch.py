"""The server launcher on real processes: `transformers serve` on the tiny model, and a small
stand-in HTTP server (FAKE) for the launcher's own rules (port race, timeout, process tree,
SIGTERM and exit of the worker), which need no model.

Nothing is mocked: servers bind real ports, the tree is checked with psutil, requests stream
over HTTP. On this machine NVML is absent, so every StopReport says the GPU check was not
possible (and why), which is what a CPU job records.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psutil
import pytest

from llem.backends import ServerCommand
from llem.harness.server.launch import (
    PortInUseError,
    ServerDiedError,
    ServerProcess,
    ServerStartError,
    backend_server,
)
from llem.harness.server.proctree import running
from llem.measure.gpu import visible_memory_used_mib

pytestmark = pytest.mark.slow

START_BOUND_S = 240.0  # transformers serve starts in ~15-45 s on 2 shared cores
OFFLINE = {"HF_HUB_OFFLINE": "1"}
# On the CPU, continuous batching sizes its KV cache to 60% of the machine's RAM (14 GB
# here): two servers at once, or one beside other work, get OOM-killed. A fixed number of
# blocks keeps each tiny-model server small.
SMALL_KV = {"cb_num_blocks": 64}

FAKE = r'''
import http.server, json, signal, subprocess, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
if "child" in mode:  # a child that leaves the server's session and group
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                     start_new_session=True)
if "stubborn" in mode:  # after the child: an ignored signal stays ignored across exec
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("fake server, port", port, "mode", mode, flush=True)
if "silent" in mode:
    time.sleep(600)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = {"/health": b"ok", "/v1/models": b'{"data": [{"id": "fake"}]}'}.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
'''


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fake") / "fake_server.py"
    path.write_text(FAKE)
    return path


def fake_cmd(script: Path, mode: str = "") -> object:
    return lambda port: ServerCommand([sys.executable, str(script), str(port), mode or "-"],
                                      "/health", "fake")


def tree_pids(server: ServerProcess) -> list[psutil.Process]:
    assert server.proc is not None
    root = psutil.Process(server.proc.pid)
    return [root, *root.children(recursive=True)]


def assert_gone(procs: list[psutil.Process]) -> None:
    left = [p.pid for p in procs if running(p)]
    assert not left, f"processes of the server's tree still running: {left}"


async def stream_completion(base_url: str, model: str, max_tokens: int) -> list[dict]:
    body = {"model": model, "prompt": "Explain why the sky is blue.", "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    chunks = []
    async with aiohttp.ClientSession() as s, s.post(f"{base_url}/v1/completions",
                                                    json=body) as r:
        assert r.status == 200, await r.text()
        async for raw in r.content:
            line = raw.decode().strip()
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line.removeprefix("data: ")))
    return chunks


def check_stream(chunks: list[dict], max_tokens: int) -> None:
    texts = [c["choices"][0].get("text", "") for c in chunks if c.get("choices")]
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert sum(1 for t in texts if t) >= 2, chunks  # streamed, not one final chunk
    assert len(usage) == 1 and usage[0]["prompt_tokens"] > 0
    assert 1 <= usage[0]["completion_tokens"] <= max_tokens


# --- transformers serve on the tiny model -------------------------------------------------

@pytest.fixture(scope="module")
def serve(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("store") / "servers" / "serve-a.log"
    # as on a fresh GPU host serving a local folder: no hub cache yet, which serve's
    # /v1/models scans (a 500 there, so never ready, unless the launcher creates it)
    fresh_hub = tmp_path_factory.mktemp("home") / "no-hub-cache-yet"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_CACHE", str(fresh_hub))
        server = backend_server("transformers", model=str(tiny_model), dtype="float32",
                                engine=SMALL_KV, log_path=log, python=sys.executable,
                                env=OFFLINE, start_timeout_s=START_BOUND_S)
        server.start()
    assert fresh_hub.is_dir()
    yield server
    server.stop()


def test_transformers_serve_is_ready_within_the_bound_and_streams(serve: ServerProcess,
                                                                  tiny_model: Path) -> None:
    assert serve.alive() and serve.attempts == 1
    assert serve.health_s is not None and serve.ready_s is not None
    assert serve.health_s <= serve.ready_s < START_BOUND_S
    assert serve.served_models == [str(tiny_model)]
    info = serve.info()
    assert info["base_url"] == serve.base_url and info["served_model"] == str(tiny_model)
    assert info["command"].split()[1:5] == ["-m", "transformers.cli.transformers", "serve",
                                            str(tiny_model)]
    chunks = asyncio.run(stream_completion(serve.base_url, str(tiny_model), 8))
    check_stream(chunks, 8)
    print(f"\ntransformers serve: ready {serve.ready_s:.1f} s (health {serve.health_s:.1f} s)")


def test_log_file_beside_the_store(serve: ServerProcess) -> None:
    text = serve.log_path.read_text()
    assert text.startswith("==> llem ") and f"port {serve.port}" in text
    assert "Uvicorn running on" in text


def test_two_servers_at_once_then_one_killed(serve: ServerProcess, tiny_model: Path,
                                             tmp_path: Path) -> None:
    other = backend_server("transformers", model=str(tiny_model), dtype="float32",
                           engine=SMALL_KV, log_path=tmp_path / "serve-b.log",
                           python=sys.executable, env=OFFLINE, start_timeout_s=START_BOUND_S)
    with other:
        assert other.port != serve.port and other.alive() and serve.alive()
        for s in (serve, other):
            with socket.create_connection(("127.0.0.1", s.port), timeout=5):
                pass
        procs = tree_pids(other)
        rss_gib = sum(p.memory_info().rss for p in procs) / 2**30
        assert rss_gib < 4, f"{rss_gib:.1f} GiB: the KV cache was not kept small"
        assert other.proc is not None
        os.kill(other.proc.pid, signal.SIGKILL)  # killed mid-level, its children orphaned
        deadline = time.perf_counter() + 10
        while other.alive() and time.perf_counter() < deadline:
            time.sleep(0.1)
        assert not other.alive()
        with pytest.raises(ServerDiedError, match="killed by SIGKILL") as err:
            other.raise_if_dead()
        assert err.value.returncode == -9 and "while in use" in str(err.value)
        report = other.stop()
        assert report.exit_code == -9 and report.left == []
        assert_gone(procs)  # the orphans too
    assert serve.alive()  # the first one is untouched


def test_stop_leaves_no_process_of_the_tree(serve: ServerProcess) -> None:
    procs = tree_pids(serve)
    assert len(procs) >= 2  # transformers serve spawns helpers
    report = serve.stop()
    assert_gone(procs)
    assert report.processes >= len(procs) and report.left == []
    assert report.terminated == report.processes and report.killed == []
    assert report.gpu_memory_before_mib is None and report.gpu_memory_released is None
    assert report.gpu_check is not None and report.gpu_check.startswith("not possible: NVML")
    assert serve.stop() is report and not serve.alive()  # idempotent
    assert json.dumps(report.as_row())
    print(f"\ntransformers serve: stopped in {report.stop_s:.2f} s, {report.processes} processes")


def test_missing_model_fails_with_the_log_tail(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    server = backend_server("transformers", model=str(missing), dtype="float32",
                            engine=SMALL_KV, log_path=tmp_path / "bad.log",
                            python=sys.executable, env=OFFLINE, start_timeout_s=120)
    t0 = time.perf_counter()
    with pytest.raises(ServerStartError, match="exited before it was ready") as err:
        server.start()
    assert time.perf_counter() - t0 < 120
    msg = str(err.value)
    assert "exit code 1" in msg and str(missing) in err.value.log_tail
    assert f"last lines of {tmp_path / 'bad.log'}" in msg
    assert len(err.value.log_tail.splitlines()) <= 20
    assert server.report is not None and server.report.left == []


# --- the launcher's own rules, on the stand-in server ---------------------------------------

def test_never_ready_times_out_and_stops_the_tree(fake: Path, tmp_path: Path) -> None:
    server = ServerProcess(fake_cmd(fake, "silent"), tmp_path / "silent.log",
                           start_timeout_s=2.0)
    t0 = time.perf_counter()
    with pytest.raises(ServerStartError, match="not ready within 2 s") as err:
        server.start()
    assert time.perf_counter() - t0 < 2.0 + 15
    assert "fake server, port" in err.value.log_tail and err.value.returncode is None
    assert server.report is not None and server.report.left == []
    assert server.proc is not None and server.proc.poll() is not None


def test_explicit_port_taken_is_a_clear_error(fake: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServerProcess(fake_cmd(fake), tmp_path / "taken.log", port=port)
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is taken"):
            server.start()
    assert server.proc is None  # nothing was started


def test_port_taken_in_the_race_is_retried_on_another(fake: Path, tmp_path: Path) -> None:
    stolen: list[socket.socket] = []

    def command(port: int) -> ServerCommand:
        if not stolen:  # another process takes the free port before the server binds it
            s = socket.socket()
            s.bind(("127.0.0.1", port))
            s.listen()
            stolen.append(s)
        return ServerCommand([sys.executable, str(fake), str(port), "-"], "/health", "fake")

    try:
        with ServerProcess(command, tmp_path / "race.log") as server:
            assert server.attempts == 2 and server.port != stolen[0].getsockname()[1]
            assert server.alive()
        log = (tmp_path / "race.log").read_text()
        assert "attempt 1" in log and "attempt 2" in log and "Address already in use" in log
    finally:
        for s in stolen:
            s.close()


def test_stop_kills_children_that_left_the_group_and_ignore_sigterm(fake: Path,
                                                                     tmp_path: Path) -> None:
    server = ServerProcess(fake_cmd(fake, "child,stubborn"), tmp_path / "child.log",
                           term_timeout_s=1.0).start()
    procs = tree_pids(server)
    assert len(procs) == 2 and os.getsid(procs[1].pid) != os.getsid(procs[0].pid)
    report = server.stop()
    assert_gone(procs)
    assert report.killed == [procs[0].pid]  # the top process ignored SIGTERM
    assert report.terminated == 1 and report.exit_code == -9


WORKER = r'''
import sys, time
from pathlib import Path
from llem.backends import ServerCommand
from llem.harness.server.launch import ServerProcess
fake, log, how = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
server = ServerProcess(lambda p: ServerCommand([sys.executable, fake, str(p), "child"],
                                               "/health", "fake"), log).start()
print(server.proc.pid, flush=True)
if how == "sigterm":
    time.sleep(600)
'''


@pytest.mark.parametrize("how", ["sigterm", "exit"])
def test_worker_sigterm_or_exit_stops_the_server(fake: Path, tmp_path: Path, how: str) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    worker = subprocess.Popen([sys.executable, str(script), str(fake), str(tmp_path / "w.log"),
                               how], stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    top = psutil.Process(int(worker.stdout.readline()))
    procs = [top, *top.children(recursive=True)]
    if how == "sigterm":
        worker.send_signal(signal.SIGTERM)
    code = worker.wait(timeout=60)
    assert code == (-signal.SIGTERM if how == "sigterm" else 0)
    assert_gone(procs)


def test_gpu_memory_without_nvml_is_none_with_a_reason() -> None:
    used, reason = visible_memory_used_mib()
    assert used is None and reason is not None and reason.startswith("NVML unavailable")
