"""llem's streaming client against a fake OpenAI server with known delays: TTFT and ITL come
out as the server's delays, token counts come from the server's usage (never from chunks),
failures are records, and an API key is sent but never kept in a record or an error."""

from __future__ import annotations

import asyncio
import statistics
from itertools import pairwise

import pytest

from llem.errors import UserError
from llem.harness.server.client import Client, GenParams, Reply, Timeouts, is_content
from tests.support.fake_openai import fake_openai

KEY = "sk-llemtest-0123456789abcdefghij"


def _requests(base_url: str, n: int, *, chat: bool = False, max_tokens: int = 8,
              api_key_env: str | None = None, timeouts: Timeouts | None = None) -> list[Reply]:
    async def go() -> list[Reply]:
        async with Client(base_url, "fake-model", GenParams(max_tokens=max_tokens), chat=chat,
                          api_key_env=api_key_env, timeouts=timeouts) as client:
            return [await client.request(i, "Say something.") for i in range(n)]
    return asyncio.run(go())


@pytest.mark.parametrize("chat", [False, True])
def test_known_delays_come_out_in_ttft_and_itl(chat: bool) -> None:
    """ITL within 1 ms on the median; TTFT never below its delay and within 3 ms above it
    (a fresh connection's set-up is part of TTFT, as in `vllm bench serve`: measured
    1.0-1.4 ms on a loaded CI machine). A CPU shared with other work deschedules a process
    for milliseconds (3-6 ms with 3 busy processes per core), so a round may be repeated,
    up to 3; the best one counts. Counting the role chunk as the first token would put TTFT
    below the delay."""
    ttft, itl = 0.030, 0.010
    rounds = []
    with fake_openai(ttft_s=ttft, itl_s=itl) as server:
        for _ in range(3):
            replies = _requests(server.base_url, 12, chat=chat)
            assert all(r.ok and len(r.chunk_times_s) == 8 for r in replies)  # role: no token
            ttfts = [r.first_token_s - r.sent_s for r in replies]
            gaps = [b - a for r in replies for a, b in pairwise(r.chunk_times_s)]
            # a client sees a token only after it was sent: never below the delay
            assert statistics.median(ttfts) >= ttft, ttfts
            rounds.append((statistics.median(ttfts) - ttft, abs(statistics.median(gaps) - itl)))
            if rounds[-1][0] < 3e-3 and rounds[-1][1] < 1e-3:
                break
    assert any(t < 3e-3 and i < 1e-3 for t, i in rounds), f"(TTFT, ITL) median errors: {rounds}"
    r = replies[0]
    assert r.end_s == r.chunk_times_s[-1] <= r.done_s and r.finish_reason == "length"
    assert r.status == 200 and r.error is None


def test_tokens_come_from_usage_not_from_chunks() -> None:
    with fake_openai(tokens_per_chunk=3, prompt_tokens=11) as server:
        [r] = _requests(server.base_url, 1, max_tokens=10)
        body = server.bodies[0]
    assert len(r.chunk_times_s) == 4  # 3 + 3 + 3 + 1 tokens
    assert (r.input_tokens, r.output_tokens, r.usage_reported) == (11, 10, True)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 10 and body["model"] == "fake-model"
    assert "ignore_eos" not in body  # extensions only when asked for


def test_no_usage_means_no_token_counts() -> None:
    with fake_openai(usage=False) as server:
        [r] = _requests(server.base_url, 1, max_tokens=5)
    assert r.ok and len(r.chunk_times_s) == 5
    assert (r.input_tokens, r.output_tokens, r.usage_reported) == (None, None, False)


def test_http_error_is_a_record() -> None:
    with fake_openai(status=500) as server:
        [r] = _requests(server.base_url, 1)
    assert not r.ok and r.status == 500 and "HTTP 500" in r.error and "fake failure" in r.error
    assert r.chunk_times_s == [] and r.first_token_s is None and r.done_s is not None


def test_a_hung_server_times_out_into_a_record() -> None:
    with fake_openai(hang=True) as server:
        [r] = _requests(server.base_url, 1, timeouts=Timeouts(connect_s=1, read_s=0.3,
                                                               total_s=5))
    assert not r.ok and r.status is None and r.error.startswith("timeout")
    assert r.done_s - r.sent_s == pytest.approx(0.3, abs=0.25)


def test_refused_connection_is_a_record() -> None:
    with fake_openai() as server:
        url = server.base_url
    [r] = _requests(url, 1)  # the server is gone: nothing listens there
    assert not r.ok and r.status is None and "Connect" in r.error


def test_api_key_is_sent_and_never_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLEM_TEST_SERVER_KEY", KEY)
    with fake_openai(api_key=KEY) as server:
        [ok] = _requests(server.base_url, 1, api_key_env="LLEM_TEST_SERVER_KEY")
        server.behaviour.status, server.behaviour.echo_auth = 500, True  # a leaky server
        [leak] = _requests(server.base_url, 1, api_key_env="LLEM_TEST_SERVER_KEY")
        seen = list(server.auth_seen)
        [refused] = _requests(server.base_url, 1)  # no key: the server refuses
    assert seen == [f"Bearer {KEY}"] * 2
    assert ok.ok and not refused.ok and refused.status == 401
    assert not leak.ok and "got Authorization: Bearer ***" in leak.error
    client = Client(server.base_url, "m", GenParams(max_tokens=1),
                    api_key_env="LLEM_TEST_SERVER_KEY")
    for text in (repr(ok), repr(leak), repr(refused), repr(client), str(leak.error)):
        assert KEY not in text


def test_missing_api_key_variable_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLEM_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(UserError, match="LLEM_TEST_NO_SUCH_KEY"):
        Client("http://127.0.0.1:9", "m", GenParams(max_tokens=1),
               api_key_env="LLEM_TEST_NO_SUCH_KEY")


def test_which_chunks_are_content() -> None:
    assert is_content({"choices": [{"text": "a"}]}, chat=False)
    assert is_content({"choices": [{"text": "", "finish_reason": None}]}, chat=False)
    assert not is_content({"choices": [{"text": "", "finish_reason": "stop"}]}, chat=False)
    assert not is_content({"choices": [], "usage": {"completion_tokens": 3}}, chat=False)
    assert not is_content({"choices": [{"delta": {"role": "assistant", "content": ""}}]},
                          chat=True)
    assert not is_content({"choices": [{"delta": {}, "finish_reason": "length"}]}, chat=True)
    assert is_content({"choices": [{"delta": {"reasoning_content": "hm"}}]}, chat=True)
    assert is_content({"choices": [{"delta": {"content": "x"}}]}, chat=True)


def test_events_cut_across_reads_are_parsed_once() -> None:
    """A read may end mid-event (and a server may end lines with \\r\\n): each content chunk
    is counted once, at the time of the read that completed it."""
    events = (b'data: {"choices": [{"text": "a"}]}\r\n\r\n: ping\r\n\r\n'
              b'data: {"choices": [{"text": "b", "finish_reason": "length"}]}\n\n'
              b'data: {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2}}'
              b'\n\ndata: [DONE]\n\n')
    cuts = [0, 20, 41, 60, 95, 140, len(events)]

    class Content:
        async def iter_any(self):
            for a, b in pairwise(cuts):
                yield events[a:b]

    class Response:
        content = Content()

    reply = Reply(0, 0.0)
    client = Client("http://127.0.0.1:9", "m", GenParams(max_tokens=2))
    asyncio.run(client._read_stream(Response(), reply))
    assert reply.ok and len(reply.chunk_times_s) == 2 and reply.finish_reason == "length"
    assert (reply.input_tokens, reply.output_tokens) == (2, 2)
    assert reply.chunk_times_s[0] < reply.chunk_times_s[1]  # "a" completes in an earlier read


def _read(events: bytes, max_tokens: int) -> Reply:
    """events as one read of a 200 event stream, through the client's own stream reader."""
    class Content:
        async def iter_any(self):
            yield events

    class Response:
        content = Content()
        headers = {"Content-Type": "text/event-stream"}

    reply = Reply(0, 0.0)
    client = Client("http://127.0.0.1:9", "m", GenParams(max_tokens=max_tokens))
    asyncio.run(client._read_stream(Response(), reply))
    return reply


def test_a_usage_past_max_tokens_fails_the_request() -> None:
    """usage.completion_tokens 5 for max_tokens 2: the server cannot have decoded them, and
    counted they inflated tokens/s (2.5 times here) and cut J/token. A failed request with
    its reason, no count kept; usage at max_tokens is fine (the test above)."""
    reply = _read(b'data: {"choices": [{"text": "a"}]}\n\n'
                  b'data: {"choices": [{"text": "b", "finish_reason": "length"}]}\n\n'
                  b'data: {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": '
                  b'5}}\n\ndata: [DONE]\n\n', max_tokens=2)
    assert not reply.ok and (reply.input_tokens, reply.output_tokens) == (None, None)
    assert reply.error == ("the server's usage says 5 output tokens, more than the request's "
                           "max_tokens (2) lets it decode")


def test_a_body_that_stops_before_its_end_is_a_cut_reply() -> None:
    """Content, then the body ends with no finish_reason and no usage: the connection was
    closed (read as a normal end by the transport at times): a failed request, not a reply
    of two tokens; with the finish_reason the same body is a whole reply."""
    cut = _read(b'data: {"choices": [{"text": "a"}]}\n\ndata: {"choices": [{"text": "b"}]}'
                b'\n\n', max_tokens=8)
    assert not cut.ok and cut.error == ("the stream ended after 2 content chunks with no "
                                        "finish_reason or usage: the reply was cut short")
    whole = _read(b'data: {"choices": [{"text": "a"}]}\n\n'
                  b'data: {"choices": [{"text": "b", "finish_reason": "stop"}]}\n\n',
                  max_tokens=8)
    assert whole.ok and whole.error is None
