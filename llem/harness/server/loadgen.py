"""One load level against a server: send requests as a profile says, record every reply.

run_load is called from plain synchronous code (the worker) and runs its own event loop
(asyncio.run), with one client session for the level. Prompts are reused round-robin.
Besides the replies it returns the two times the energy window needs: when the load reached
its target (the first request after the ramp; closed-loop, also n requests in flight) and
when the last request was sent (the drain starts after it). on_edge(name, t), if given, is
called with ("target_reached", target_reached_s) and ("last_send", last_send_s) as they
happen, in a thread of its own (it may read energy counters without holding up the sends).

Over-saturation stop (open-loop levels, once the load reached its target): the level stops
early, marked saturated with the reason, when over the last sustain_s seconds the requests
sent fell under min_send_ratio of those the profile scheduled (the generator cannot keep
up, or a max_concurrency cap is full because the server is far behind), or the requests in
flight kept growing: the means of the first, middle and last third of the in-flight samples
rise, the last by at least max_growth (relative) and min_growth_requests. That growth is
judged over max(sustain_s, latency_multiple x the median latency of the level's first
completed requests), so a queue that merely fills up to its steady size is not taken for one
that grows without end. A saturated level's replies still in flight are cancelled (closing
their connections makes vLLM abort them), so the next level starts on an idle server.

Sweep (guidellm's): measure the synchronous rate and the maximum throughput (completion_rate
of a Synchronous and a Throughput level), then sweep_rates spreads the constant or Poisson
levels between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import statistics
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from llem.harness.server.client import Client, GenParams, Reply, Timeouts
from llem.harness.server.profiles import (
    Concurrency,
    Constant,
    Gamma,
    Limit,
    Poisson,
    Profile,
    Ramp,
    Throughput,
    closed_cap,
    describe,
    open_schedule,
)

FIRST_COMPLETIONS = 20  # completions whose median latency sets the growth rule's span
MAX_OPEN_CONNECTIONS = 4096  # open-loop in-flight cap when the profile sets none


@dataclass(frozen=True)
class Saturation:
    """The over-saturation stop's thresholds (the rules in the module docstring)."""

    check_s: float = 0.5
    sustain_s: float = 10.0
    min_send_ratio: float = 0.9
    min_due: int = 10
    max_growth: float = 0.5
    min_growth_requests: int = 10
    latency_multiple: float = 3.0


@dataclass
class LoadResult:
    """One level's replies and times (time.perf_counter() seconds)."""

    profile: str  # profiles.describe(): "poisson rate=4 seed=0"
    replies: list[Reply]  # every request, in send order, ramp included (Reply.in_ramp)
    started_s: float  # the level's start: the first request's scheduled time
    ended_s: float  # the last reply ended (after the drain)
    target_reached_s: float | None  # sent_s of the request with which the load reached target
    last_send_s: float | None  # the last request's sent_s; the drain follows
    target_rate_per_s: float | None  # open-loop rate; None closed-loop
    concurrency: int | None  # closed-loop n; open-loop max_concurrency
    stop_reason: str  # "requests", "duration" or "saturated"
    saturated: bool = False
    saturation_reason: str | None = None
    max_in_flight: int = 0
    in_flight: list[tuple[float, int]] = field(default_factory=list)  # (t, n) each check_s

    @property
    def measured(self) -> list[Reply]:
        return [r for r in self.replies if not r.in_ramp]

    @property
    def achieved_rate_per_s(self) -> float | None:
        """Send rate of the measured requests: (n - 1) / span of their send times."""
        sent = sorted(r.sent_s for r in self.measured if r.sent_s is not None)
        span = sent[-1] - sent[0] if len(sent) > 1 else 0.0
        return (len(sent) - 1) / span if span > 0 else None


def completion_rate(result: LoadResult) -> float | None:
    """Successful measured requests per second, first send to last reply: the synchronous
    rate (of a Synchronous level) or the maximum throughput (of a Throughput level)."""
    ok = [r for r in result.measured if r.ok and r.sent_s is not None and r.done_s is not None]
    if not ok:
        return None
    span = max(r.done_s for r in ok if r.done_s) - min(r.sent_s for r in ok if r.sent_s)
    return len(ok) / span if span > 0 else None


def sweep_rates(sync_rate: float, max_rate: float, n: int) -> list[float]:
    """n request rates evenly spaced strictly between the synchronous rate and the maximum
    throughput (both ends excluded: those two levels are measured as such):
    sync + (max - sync) * i / (n + 1) for i = 1..n."""
    if n < 0:
        raise ValueError("n must be >= 0")
    if not 0 < sync_rate < max_rate:
        raise ValueError(f"need 0 < sync_rate < max_rate, got {sync_rate} and {max_rate}")
    return [sync_rate + (max_rate - sync_rate) * i / (n + 1) for i in range(1, n + 1)]


def fd_cap() -> int:
    """Connections one level may hold: MAX_OPEN_CONNECTIONS, within the open-file limit."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return MAX_OPEN_CONNECTIONS if soft == resource.RLIM_INFINITY else \
        max(16, min(MAX_OPEN_CONNECTIONS, soft - 128))


def slots(profile: Profile, limit: Limit, ramp: Ramp) -> int:
    """Requests in flight at most: closed-loop n (Throughput: its cap, else every request
    of the level), open-loop max_concurrency; where unset, fd_cap() (a send that finds
    every slot taken waits, and the wait is its wait_s)."""
    if isinstance(profile, Concurrency):
        return profile.n
    if isinstance(profile, Throughput):
        total = None if limit.requests is None or ramp.seconds else \
            limit.requests + ramp.requests + ramp.warmup
        return profile.max_concurrency or min(profile.slots(total), fd_cap())
    return profile.max_concurrency or fd_cap()


class _Schedule:
    """An open-loop schedule generated on demand, ending after the requests limit."""

    def __init__(self, it: Iterator[tuple[float, bool]], t0: float, limit: int | None) -> None:
        self.it, self.t0, self.limit = it, t0, limit
        self.times: list[float] = []
        self.ramp: list[bool] = []
        self.measured = 0
        self.done = False

    def _next(self) -> None:
        offset, in_ramp = next(self.it)
        self.times.append(self.t0 + offset)
        self.ramp.append(in_ramp)
        self.measured += not in_ramp
        self.done = self.limit is not None and self.measured >= self.limit

    def get(self, i: int) -> tuple[float, bool] | None:
        while len(self.times) <= i and not self.done:
            self._next()
        return (self.times[i], self.ramp[i]) if i < len(self.times) else None

    def due(self, a: float, b: float) -> int:
        """Requests scheduled in (a, b]."""
        while not self.done and (not self.times or self.times[-1] <= b):
            self._next()
        return bisect_right(self.times, b) - bisect_right(self.times, a)


class _Level:
    def __init__(self, client: Client, prompts: Sequence[str], profile: Profile, ramp: Ramp,
                 limit: Limit, saturation: Saturation | None, drain_timeout_s: float | None,
                 on_edge: Callable[[str, float], None] | None, slots: int) -> None:
        self.client, self.prompts, self.profile = client, prompts, profile
        self.ramp, self.limit, self.saturation = ramp, limit, saturation
        self.drain_timeout_s, self.on_edge, self.slots = drain_timeout_s, on_edge, slots
        self.replies: list[Reply] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.in_flight = self.max_in_flight = self.measured = 0
        self.launched: list[float] = []  # launch times, in order
        self.samples: list[tuple[float, int]] = []
        self.first_e2e: list[float] = []
        self.target_index: int | None = None
        self.deadline: float | None = None
        self.stop_reason = "requests"
        self.saturation_reason: str | None = None
        self.edges: list[asyncio.Future[None]] = []
        self.open = isinstance(profile, Constant | Poisson | Gamma)

    async def run(self) -> LoadResult:
        self.slot = asyncio.Event()
        self.sem = asyncio.Semaphore(self.slots)
        with ThreadPoolExecutor(1, "llem-load-edge") as self.pool:
            if self.on_edge is not None:  # its thread started now, not at the first edge
                await asyncio.get_running_loop().run_in_executor(self.pool, time.perf_counter)
            return await self._run()

    async def _run(self) -> LoadResult:
        async with self.client:
            self.t0 = time.perf_counter()
            if isinstance(self.profile, Constant | Poisson | Gamma):
                self.sched = _Schedule(open_schedule(self.profile, self.ramp), self.t0,
                                       self.limit.requests)
                dispatcher = asyncio.create_task(self._open())
            else:
                dispatcher = asyncio.create_task(self._closed())
            monitor = asyncio.create_task(self._monitor(dispatcher))
            await asyncio.wait([dispatcher])
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)
            if not dispatcher.cancelled():
                dispatcher.result()  # a bug in the dispatcher is raised, not hidden
            await asyncio.sleep(0)  # every launched request takes its first step: sent_s
            sent = [r.sent_s for r in self.replies if r.sent_s is not None]
            if sent:
                self._edge("last_send", max(sent))
            await self._drain()
            await asyncio.gather(*self.edges)
        return self._result()

    def _launch(self, index: int, scheduled_s: float, in_ramp: bool) -> None:
        reply = Reply(index, scheduled_s, in_ramp)
        self.replies.append(reply)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        task = asyncio.create_task(self.client.send(reply, self.prompts[index % len(self.prompts)]))
        self.tasks.add(task)
        task.add_done_callback(partial(self._finished, reply))
        self.launched.append(time.perf_counter())
        self.measured += not in_ramp

    def _finished(self, reply: Reply, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.in_flight -= 1
        self.slot.set()
        if self.open:
            self.sem.release()
        if reply.ok and reply.end_s is not None and reply.sent_s is not None and \
                len(self.first_e2e) < FIRST_COMPLETIONS:
            self.first_e2e.append(reply.end_s - reply.sent_s)

    def _reached(self, index: int) -> None:
        self.target_index = index
        if self.limit.duration_s is not None:  # from the schedule: no drift from send lag
            self.deadline = self.replies[-1].scheduled_s + self.limit.duration_s
        reply = self.replies[-1]
        # run after the request's first step (callbacks run in the order they were queued),
        # which stamps its sent_s: the edge's time is exactly target_reached_s
        asyncio.get_running_loop().call_soon(lambda: self._edge(
            "target_reached", reply.sent_s if reply.sent_s is not None else self.launched[-1]))

    def _edge(self, name: str, t: float) -> None:
        if self.on_edge is not None:
            loop = asyncio.get_running_loop()
            self.edges.append(loop.run_in_executor(self.pool, self.on_edge, name, t))

    async def _open(self) -> None:
        i = 0
        while (nxt := self.sched.get(i)) is not None:
            at, in_ramp = nxt
            if self.deadline is not None and at >= self.deadline:
                self.stop_reason = "duration"
                return
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.sem.acquire()
            self._launch(i, at, in_ramp)
            if not in_ramp and self.target_index is None:
                self._reached(i)
            i += 1

    async def _closed(self) -> None:
        n, i = self.slots, 0
        while True:
            if self.limit.requests is not None and self.measured >= self.limit.requests:
                return
            now = time.perf_counter()
            if self.deadline is not None and now >= self.deadline:
                self.stop_reason = "duration"
                return
            cap, in_ramp, change_s = closed_cap(n, self.ramp, now - self.t0, i)
            if self.in_flight < cap:
                self._launch(i, now, in_ramp)
                if not in_ramp and self.target_index is None and self.in_flight >= n:
                    self._reached(i)
                i += 1
                continue
            wait = min(change_s, self.deadline - now if self.deadline is not None else math.inf)
            self.slot.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.slot.wait(), None if math.isinf(wait) else wait)

    async def _monitor(self, dispatcher: asyncio.Task[None]) -> None:
        check_s = self.saturation.check_s if self.saturation else 0.5
        while True:
            await asyncio.sleep(check_s)
            now = time.perf_counter()
            self.samples.append((now, self.in_flight))
            if self.saturation is None or not self.open or \
                    self.target_index is None:
                continue
            reason = self._saturated(now, self.launched[self.target_index], self.saturation)
            if reason:
                self.saturation_reason, self.stop_reason = reason, "saturated"
                dispatcher.cancel()
                return

    def _saturated(self, now: float, target_s: float, s: Saturation) -> str | None:
        since = now - target_s
        if since >= s.sustain_s:
            a = now - s.sustain_s
            due = self.sched.due(a, now)
            sent = bisect_right(self.launched, now) - bisect_right(self.launched, a)
            if due >= s.min_due and sent < s.min_send_ratio * due:
                return (f"send rate fell to {sent / due:.2f} of the target over the last "
                        f"{s.sustain_s:g} s ({sent} sent of {due} scheduled)")
        if not self.first_e2e:
            return None
        span = max(s.sustain_s, s.latency_multiple * statistics.median(self.first_e2e))
        pts = [n for t, n in self.samples if t > now - span]
        if since < span or len(pts) < 6:
            return None
        k = len(pts) // 3
        m1, m2, m3 = (statistics.fmean(p) for p in (pts[:k], pts[k:-k], pts[-k:]))
        if m1 < m2 < m3 and m3 - m1 >= s.min_growth_requests and m3 >= (1 + s.max_growth) * m1:
            return (f"requests in flight kept growing over the last {span:.1f} s "
                    f"({m1:.1f} -> {m2:.1f} -> {m3:.1f} by thirds)")
        return None

    async def _drain(self) -> None:
        if not self.tasks:
            return
        timeout = 0.0 if self.saturation_reason else self.drain_timeout_s
        pending = set(self.tasks)
        if timeout != 0.0:
            _, pending = await asyncio.wait(self.tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _result(self) -> LoadResult:
        for r in self.replies:
            if r.sent_s is None and r.error is None:
                r.error = "not sent: the load level stopped first"
        target = self.replies[self.target_index].sent_s if self.target_index is not None \
            else None
        sent = [r.sent_s for r in self.replies if r.sent_s is not None]
        p = self.profile
        rate = p.rate if isinstance(p, Constant | Poisson | Gamma) else None
        cap = p.max_concurrency if isinstance(p, Constant | Poisson | Gamma) else self.slots
        return LoadResult(
            profile=describe(p), replies=self.replies,
            started_s=self.replies[0].scheduled_s if self.replies else self.t0,
            ended_s=time.perf_counter(), target_reached_s=target,
            last_send_s=max(sent) if sent else None, target_rate_per_s=rate,
            concurrency=cap,
            stop_reason=self.stop_reason, saturated=self.saturation_reason is not None,
            saturation_reason=self.saturation_reason, max_in_flight=self.max_in_flight,
            in_flight=self.samples)


def run_load(base_url: str, model: str, prompts: Sequence[str], profile: Profile,
             gen: GenParams, *, limit: Limit, ramp: Ramp | None = None, chat: bool = False,
             api_key_env: str | None = None, saturation: Saturation | None = Saturation(),
             timeouts: Timeouts | None = None, drain_timeout_s: float | None = None,
             on_edge: Callable[[str, float], None] | None = None) -> LoadResult:
    """Drive one load level and return every reply; blocks (its own event loop).

    saturation=None turns the over-saturation stop off. drain_timeout_s bounds the wait for
    the replies still in flight after the last send (None: until each ends or times out);
    those cut off end as errors ("cancelled").
    """
    if not prompts:
        raise ValueError("run_load needs at least one prompt")
    ramp = ramp or Ramp()
    n = slots(profile, limit, ramp)
    client = Client(base_url, model, gen, chat=chat, api_key_env=api_key_env,
                    max_connections=n, timeouts=timeouts)
    level = _Level(client, prompts, profile, ramp, limit, saturation, drain_timeout_s,
                   on_edge, n)
    return asyncio.run(level.run())
