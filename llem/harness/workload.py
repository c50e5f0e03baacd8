"""Request arrivals: when each request of the workload becomes available to the backend.

offline: every request of a pass is queued at the pass's start (a batch benchmark).
constant: one request every 1/rate seconds. poisson: exponential gaps at rate, from a seeded
generator (the same seed gives the same schedule). Arrivals are open-loop: the schedule
does not wait for the backend, so a backend slower than the rate builds a queue, and the
time each request waited is recorded.

A backend's generate() is synchronous over a batch, so the requests in flight are the batch
being served: the dispatcher takes up to min(batch_size, max_concurrency) requests that have
arrived, serves them, and repeats; it never holds back an arrived request to fill a batch.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from llem.backends import Backend, GenerateSpec, RequestRecord


@dataclass(frozen=True)
class Served:
    """One request as served: its pass (repeat), dispatch batch, record and arrival time."""

    repeat: int
    batch: int
    record: RequestRecord
    arrival_s: float  # same clock as record.start_s


class Schedule:
    """Arrival times, continued across the passes of one window."""

    def __init__(self, arrival: str, rate: float | None, seed: int = 0) -> None:
        if arrival not in ("offline", "constant", "poisson"):
            raise ValueError(f"unknown arrival pattern {arrival!r}")
        if arrival != "offline" and not rate:
            raise ValueError(f"arrival {arrival} needs a request rate > 0")
        self.arrival, self.rate = arrival, rate
        self.rng = random.Random(seed)
        self.last: float | None = None

    def gap(self) -> float:
        assert self.rate
        return 1.0 / self.rate if self.arrival == "constant" else self.rng.expovariate(self.rate)

    def next_pass(self, n: int, now: float) -> list[float]:
        """Arrival times (clock seconds) of the next n requests; the first pass starts now."""
        if self.arrival == "offline":
            return [now] * n
        out: list[float] = []
        for _ in range(n):
            self.last = now if self.last is None else self.last + self.gap()
            out.append(self.last)
        return out

    def achieved_rate(self, served: list[Served]) -> float | None:
        """The realised arrival rate, (n - 1) / span of arrivals; None for offline."""
        if self.arrival == "offline" or len(served) < 2:
            return None
        times = sorted(s.arrival_s for s in served)
        span = times[-1] - times[0]
        return (len(times) - 1) / span if span > 0 else None


def dispatch(backend: Backend, prompts: list[str], arrivals: list[float], cap: int,
             spec: GenerateSpec, repeat: int, clock: Callable[[], float] = time.perf_counter,
             sleep: Callable[[float], None] = time.sleep) -> list[Served]:
    """Serve prompts[i] no earlier than arrivals[i], at most cap at a time, in order."""
    pending = deque(range(len(prompts)))
    served: list[Served] = []
    batch = 0
    while pending:
        now = clock()
        wait = arrivals[pending[0]] - now
        if wait > 0:
            sleep(wait)
            continue
        take: list[int] = []
        while pending and len(take) < cap and arrivals[pending[0]] <= now:
            take.append(pending.popleft())
        out = backend.generate([prompts[i] for i in take], spec)
        if len(out) != len(take):
            raise RuntimeError(f"backend returned {len(out)} records for {len(take)} prompts")
        served.extend(Served(repeat, batch, r, arrivals[i]) for i, r in zip(take, out))
        batch += 1
    return served
