"""llem's own streaming client for OpenAI-compatible servers: one aiohttp session per load run.

Why not the openai package: it hides the chunk arrival times, and the server's timing is
what is measured. Every request streams (`stream: true`, `stream_options.include_usage`),
and its times come from time.perf_counter(), the clock of llem's energy meter:

- sent_s: just before the request is written; first_token_s: the first content chunk;
  chunk_times_s: every content chunk's arrival. A chunk may carry several tokens, so times
  are kept per chunk and the inter-token latency is the gap between content chunks, as
  `vllm bench serve` (its backend request functions) measures it.
- end_s: the last content chunk (vLLM's end of a request); done_s: the stream closed.
- A content chunk is one that carries generated output: completions, `text` that is
  non-empty, or empty on a chunk without a finish_reason (a token that decodes to nothing);
  chat, a `delta` with content or reasoning, or empty content on a chunk that is neither the
  opening role-only chunk nor a finish-only one. Usage-only chunks are not content.
- Token counts come only from the server's usage chunk, never from counting chunks: with no
  usage, input_tokens and output_tokens are None and usage_reported is False. A usage whose
  counts are no whole numbers >= 0 (or 0 output tokens beside content, or more than
  max_tokens) fails the request, as do more content chunks than max_tokens (a server that
  ignores it never ends).

A failed request (HTTP status, a stream error, a timeout, a refused connection) is a Reply
with ok False and the error; it never raises out of the load loop. An API key is read from
an environment variable the caller names and sent as a Bearer token: it is kept out of
every repr and masked (llem.credentials.redact) in every error text.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp

from llem.backends.endpoint.settings import key_problem
from llem.credentials import redact, remember
from llem.errors import UserError

ERROR_CHARS = 500  # error text kept per request (the body of a failed response, truncated)


@dataclass(frozen=True)
class GenParams:
    """What every request asks the server to generate (the OpenAI body fields).

    ignore_eos, min_tokens and top_k are vLLM / trtllm-serve extensions: they are sent only
    when set (a server that validates its fields strictly would refuse unknown ones).
    ignore_eos makes every request decode exactly max_tokens tokens (fixed output).
    """

    max_tokens: int
    temperature: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    ignore_eos: bool = False
    min_tokens: int | None = None
    extra_body: Mapping[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"max_tokens": self.max_tokens, "temperature": self.temperature}
        for k in ("top_p", "top_k", "seed", "min_tokens"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        if self.ignore_eos:
            out["ignore_eos"] = True
        out.update(self.extra_body)
        return out


@dataclass(frozen=True)
class Timeouts:
    """Bounds on one request: connecting, silence between two reads, and the whole request.

    read_s covers the wait for the first byte too (a server under a long queue sends nothing
    until the request's prefill), so it is generous; total_s ends any request.
    """

    connect_s: float = 30.0
    read_s: float = 600.0
    total_s: float = 3600.0


@dataclass(slots=True)
class Reply:
    """One request as the client saw it. Times are time.perf_counter() seconds."""

    index: int  # the request's position in the load (prompts are used round-robin)
    scheduled_s: float  # when the profile wanted it sent
    in_ramp: bool = False  # sent during the ramp-up: excluded from measurement
    sent_s: float | None = None  # None: never sent (the level stopped first)
    chunk_times_s: list[float] = field(default_factory=list)  # content chunks' arrivals
    first_token_s: float | None = None
    end_s: float | None = None  # last content chunk; the failure time when there was none
    done_s: float | None = None  # the stream closed (or the request failed)
    input_tokens: int | None = None  # usage.prompt_tokens
    output_tokens: int | None = None  # usage.completion_tokens
    usage_reported: bool = False  # False: the server sent no usage; tokens are None
    finish_reason: str | None = None
    ok: bool = False
    status: int | None = None  # HTTP status; None when no response came
    error: str | None = None


def completions_url(base_url: str, chat: bool) -> str:
    """base_url may name the server ("http://h:8000") or its API root ("http://h:8000/v1")."""
    base = base_url.rstrip("/").removesuffix("/v1")
    return f"{base}/v1/chat/completions" if chat else f"{base}/v1/completions"


def is_content(data: dict[str, Any], chat: bool) -> bool:
    """Whether a decoded chunk carries generated output (the rule in the module docstring)."""
    choices = data.get("choices")
    if not choices:
        return False
    choice = choices[0]
    finish = choice.get("finish_reason")
    if not chat:
        text = choice.get("text")
        return text is not None and (text != "" or not finish)
    delta = choice.get("delta") or {}
    if delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning") \
            or delta.get("tool_calls"):
        return True
    return delta.get("content") == "" and "role" not in delta and not finish


MAX_USAGE_TOKENS = 2**31 - 1  # what the store's token columns hold


def usage_problem(reply: Reply, max_tokens: int = MAX_USAGE_TOKENS) -> str | None:
    """Why the server's usage cannot be the reply's token counts (None: usable or absent).
    A count that is no whole number >= 0 (negative, text, 2.5, true), none for a reply
    that streamed content, or more output tokens than the request's max_tokens let it
    decode would make the level's tokens/s and J/token wrong."""
    if not reply.usage_reported:
        return None
    for name, value in (("prompt_tokens", reply.input_tokens),
                        ("completion_tokens", reply.output_tokens)):
        if value is None:  # not sent: unknown, never guessed (the window says why)
            continue
        if isinstance(value, bool) or not isinstance(value, int) or \
                not 0 <= value <= MAX_USAGE_TOKENS:
            return f"the server's usage.{name} is {repr(value)[:40]}, not a count of tokens"
    if reply.output_tokens == 0 and reply.chunk_times_s:
        return "the server's usage says 0 output tokens for a reply that streamed content"
    if reply.output_tokens is not None and reply.output_tokens > max_tokens:
        return (f"the server's usage says {reply.output_tokens} output tokens, more than the "
                f"request's max_tokens ({max_tokens}) lets it decode")
    return None


class Client:
    """One load run's connection pool and request function; use as `async with`."""

    def __init__(self, base_url: str, model: str, gen: GenParams, *, chat: bool = False,
                 api_key_env: str | None = None, max_connections: int = 64,
                 timeouts: Timeouts | None = None) -> None:
        self.url = completions_url(base_url, chat)
        self.model, self.gen, self.chat = model, gen, chat
        self.max_connections = max(1, max_connections)
        self.timeouts = timeouts or Timeouts()
        limit = gen.body().get("max_tokens")  # as sent (extra_body may set it)
        self.max_tokens = limit if isinstance(limit, int) and limit > 0 else MAX_USAGE_TOKENS
        self._headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env, "")
            remember([key] if key else [])
            why = key_problem(api_key_env, key)
            if why:
                raise UserError(f"endpoint.api_key_env: {why}")
            self._headers["Authorization"] = f"Bearer {key}"
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # the headers (the key) stay out
        return f"Client(url={self.url!r}, model={self.model!r}, chat={self.chat})"

    async def __aenter__(self) -> Client:
        t = self.timeouts
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0,
                                         ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, headers=self._headers, read_bufsize=2**20,
            timeout=aiohttp.ClientTimeout(total=t.total_s, sock_connect=t.connect_s,
                                          sock_read=t.read_s))
        return self

    async def __aexit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def payload(self, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "stream": True,
                                "stream_options": {"include_usage": True}}
        if self.chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        return {**body, **self.gen.body()}

    async def request(self, index: int, prompt: str, scheduled_s: float | None = None,
                      in_ramp: bool = False) -> Reply:
        """One request, now (scheduled_s defaults to now)."""
        reply = Reply(index, time.perf_counter() if scheduled_s is None else scheduled_s,
                      in_ramp)
        await self.send(reply, prompt)
        return reply

    async def send(self, reply: Reply, prompt: str) -> None:
        """Send one request and fill reply in place: the caller holds the record even when
        the task is cancelled (the level stopped), which then ends with error 'cancelled'."""
        if self._session is None:
            raise RuntimeError("Client.send outside `async with Client(...)`")
        data = json.dumps(self.payload(prompt)).encode()
        reply.sent_s = time.perf_counter()
        try:
            async with self._session.post(self.url, data=data) as resp:
                reply.status = resp.status
                if resp.status != 200:
                    text = (await resp.content.read(4 * ERROR_CHARS)).decode(errors="replace")
                    self._fail(reply, f"HTTP {resp.status} {resp.reason or ''}: {text}")
                    return
                await self._read_stream(resp, reply)
        except asyncio.CancelledError:
            self._fail(reply, "cancelled: the load level stopped before this reply ended")
            raise
        except TimeoutError:
            self._fail(reply, f"timeout (connect {self.timeouts.connect_s} s, read "
                              f"{self.timeouts.read_s} s, total {self.timeouts.total_s} s)")
        except Exception as exc:  # every failure is a record, never an exception out
            self._fail(reply, f"{type(exc).__name__}: {exc}")

    async def _read_stream(self, resp: aiohttp.ClientResponse, reply: Reply) -> None:
        """Server-sent events, read as they arrive: every line of one read gets that read's
        time (they arrived together), and a line cut by the read waits for the next."""
        rest = b""
        async for block in resp.content.iter_any():
            t = time.perf_counter()
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if not self._event(line, t, reply):
                    return
        if rest and not self._event(rest, time.perf_counter(), reply):
            return
        reply.done_s = time.perf_counter()
        times = reply.chunk_times_s
        bad = usage_problem(reply, self.max_tokens)
        if bad:  # kept out of every sum: the counts are not the reply's
            reply.input_tokens = reply.output_tokens = None
            self._fail(reply, bad)
        elif times and reply.finish_reason is None and not reply.usage_reported:
            # every OpenAI-compatible server ends a reply with a finish_reason (and usage when
            # asked): a body that stops before either was cut (a connection closed cleanly
            # read as a normal end), and its tokens would count as a whole reply's
            self._fail(reply, f"the stream ended after {len(times)} content chunks with no "
                       "finish_reason or usage: the reply was cut short")
        elif times:
            reply.first_token_s, reply.end_s, reply.ok = times[0], times[-1], True
        else:
            kind = resp.headers.get("Content-Type", "no Content-Type")
            self._fail(reply, "the stream ended without a content chunk" + (
                "" if "event-stream" in kind else f" (the server answered {kind[:60]}, not "
                "server-sent events: is base_url an OpenAI-compatible server?)"))

    def _event(self, line: bytes, t: float, reply: Reply) -> bool:
        """One SSE line into reply; False when the stream is in error (reply failed)."""
        line = line.strip()
        if not line.startswith(b"data:"):  # blank separators, ": ping" comments, event:
            return True
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return True  # read on to the end of the body, so the connection is reused
        try:
            data = json.loads(payload)
        except ValueError:
            self._fail(reply, f"malformed stream chunk: {payload[:200]!r}")
            return False
        if not isinstance(data, dict):
            return True
        choices = data.get("choices")
        if "error" in data and not choices:
            self._fail(reply, f"stream error: {data['error']}")
            return False
        if choices:
            if is_content(data, self.chat):
                reply.chunk_times_s.append(t)
                if len(reply.chunk_times_s) > self.max_tokens:  # a stream without end
                    self._fail(reply, f"the server sent more than max_tokens "
                                      f"({self.max_tokens}) content chunks: it ignores "
                                      "max_tokens")
                    return False
            reply.finish_reason = choices[0].get("finish_reason") or reply.finish_reason
        usage = data.get("usage")
        if isinstance(usage, dict):
            reply.input_tokens = usage.get("prompt_tokens")
            reply.output_tokens = usage.get("completion_tokens")
            reply.usage_reported = True
        return True

    @staticmethod
    def _fail(reply: Reply, error: str) -> None:
        now = time.perf_counter()
        reply.ok = False
        reply.error = redact(error)[:ERROR_CHARS]
        reply.done_s = now
        reply.end_s = reply.chunk_times_s[-1] if reply.chunk_times_s else now
        reply.first_token_s = reply.chunk_times_s[0] if reply.chunk_times_s else None
