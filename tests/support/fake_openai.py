"""A small OpenAI-compatible streaming server, for the tests whose subject is llem's client
(its timing, usage, errors) and for benchmarks/server_client.py. It is not a model: it
streams ceil(max_tokens / tokens_per_chunk) chunks, the first ttft_s after the request
arrived (or got a slot, with max_batch) and the next every itl_s, on an absolute schedule
so sleep errors do not add up; then a usage chunk and [DONE].

Its event loop uses select() (microsecond timeouts), not epoll (millisecond timeouts,
rounded up), so a known delay comes out as that delay plus well under a millisecond.

    with fake_openai(ttft_s=0.02, itl_s=0.005) as server:   # in-process, own thread
        run_load(server.base_url, ...)
    python -m tests.support.fake_openai --ttft-s 0.02 --itl-s 0.005   # prints its URL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import selectors
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

from aiohttp import web
from aiohttp.tcp_helpers import tcp_nodelay


@dataclass
class Behaviour:
    ttft_s: float = 0.0
    itl_s: float = 0.0
    tokens_per_chunk: int = 1
    prompt_tokens: int = 7
    usage: bool = True  # False: no usage chunk (a server that reports no token counts)
    status: int = 200  # anything else: that status and a JSON error body
    hang: bool = False  # accept the request, never answer
    max_batch: int | None = None  # requests generating at once; the rest wait (a full server)
    api_key: str | None = None  # when set, a request without this Bearer key gets 401
    echo_auth: bool = False  # the error body echoes the Authorization header (a leaky server)
    record: bool = False  # keep, per prompt, when it arrived and when each write went out


class FakeServer:
    """The server's state; tests read what it saw (requests, headers, bodies, in flight)."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.base_url = ""
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.auth_seen: list[str | None] = []
        self.bodies: list[dict[str, Any]] = []
        self.timeline: dict[str, dict[str, Any]] = {}  # prompt -> arrived_s, writes_s
        self._batch: asyncio.Semaphore | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/completions", self.handle)
        app.router.add_post("/v1/chat/completions", self.handle)
        app.router.add_get("/fake/timeline", self.get_timeline)
        return app

    async def get_timeline(self, request: web.Request) -> web.Response:
        """What record kept (perf_counter seconds: the client's clock on this machine)."""
        return web.json_response(self.timeline)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        b = self.behaviour
        arrived = asyncio.get_running_loop().time()
        self.requests += 1
        auth = request.headers.get("Authorization")
        self.auth_seen.append(auth)
        body = await request.json()
        self.bodies.append(body)
        writes: list[float] | None = [] if b.record else None
        if writes is not None:
            prompt = body.get("prompt") or body["messages"][-1]["content"]
            self.timeline[prompt] = {"arrived_s": time.perf_counter() - (
                asyncio.get_running_loop().time() - arrived), "writes_s": writes}
        if b.api_key and auth != f"Bearer {b.api_key}":
            return web.json_response({"error": {"message": "bad API key"}}, status=401)
        if b.status != 200:
            message = f"fake failure (got Authorization: {auth})" if b.echo_auth else \
                "fake failure"
            return web.json_response({"error": {"message": message}}, status=b.status)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if b.hang:
                await asyncio.sleep(3600)
            if b.max_batch:
                self._batch = self._batch or asyncio.Semaphore(b.max_batch)
                async with self._batch:
                    return await self.stream(request, body,
                                             asyncio.get_running_loop().time(), writes)
            return await self.stream(request, body, arrived, writes)
        finally:
            self.in_flight -= 1

    async def stream(self, request: web.Request, body: dict[str, Any], start: float,
                     writes: list[float] | None) -> web.StreamResponse:
        """The chunks: those due at the same time go out in one write (as a server's do)."""
        b = self.behaviour
        loop = asyncio.get_running_loop()
        chat = request.path.endswith("/chat/completions")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if request.transport is not None:
            tcp_nodelay(request.transport, True)
        n = int(body.get("max_tokens") or 16)
        chunks = math.ceil(n / b.tokens_per_chunk)
        out: list[dict[str, Any]] = []
        if chat:  # the opening role-only chunk: not a token
            out.append({"choices": [{"index": 0, "delta": {"role": "assistant",
                                                            "content": ""},
                                     "finish_reason": None}]})
        for k in range(chunks):
            delay = start + b.ttft_s + k * b.itl_s - loop.time()
            if delay > 0:
                await self._flush(resp, out, writes)
                await asyncio.sleep(delay)
            text = "tok " * min(b.tokens_per_chunk, n - k * b.tokens_per_chunk)
            last = "length" if k == chunks - 1 and not chat else None
            choice = {"index": 0, "delta": {"content": text}} if chat else \
                {"index": 0, "text": text}
            out.append({"choices": [{**choice, "finish_reason": last}], "usage": None})
        if chat:  # a finish-only chunk: not a token either
            out.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        if b.usage:
            out.append({"choices": [], "usage": {"prompt_tokens": b.prompt_tokens,
                                                 "completion_tokens": n,
                                                 "total_tokens": b.prompt_tokens + n}})
        await self._flush(resp, out, writes, b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    @staticmethod
    async def _flush(resp: web.StreamResponse, out: list[dict[str, Any]],
                     writes: list[float] | None, tail: bytes = b"") -> None:
        data = b"".join(b"data: " + json.dumps(d).encode() + b"\n\n" for d in out) + tail
        if out and writes is not None:
            writes.append(time.perf_counter())
        out.clear()
        if data:
            await resp.write(data)


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


async def _start(server: FakeServer, sock: socket.socket) -> web.AppRunner:
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False,
                           shutdown_timeout=0.5)
    await runner.setup()
    await web.SockSite(runner, sock, backlog=1024).start()
    return runner


def _socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@contextmanager
def fake_openai(**behaviour: Any) -> Iterator[FakeServer]:
    """The server in this process, on a free port, in a thread with its own event loop."""
    server = FakeServer(Behaviour(**behaviour))
    sock = _socket()
    server.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    loop = _loop()
    ready = threading.Event()
    holder: dict[str, web.AppRunner] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        holder["runner"] = loop.run_until_complete(_start(server, sock))
        ready.set()
        loop.run_forever()
        loop.run_until_complete(holder["runner"].cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="fake-openai", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the fake OpenAI server did not start")
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def main(argv: list[str] | None = None) -> None:
    """Serve until killed; the first line on stdout is the base URL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in fields(Behaviour):
        kind = {"float": float, "int": int, "bool": lambda s: s.lower() in ("1", "true"),
                "str | None": str, "int | None": int}[str(f.type)]
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default)
    parser.add_argument("--port", type=int, default=0)
    args = vars(parser.parse_args(argv))
    sock = _socket(args.pop("port"))
    server = FakeServer(Behaviour(**args))
    loop = _loop()
    loop.run_until_complete(_start(server, sock))
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    loop.run_forever()


if __name__ == "__main__":
    sys.exit(main())
