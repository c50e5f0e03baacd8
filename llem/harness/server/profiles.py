"""Load profiles: when each request of a load level is sent (guidellm's idea, one class each).

Open-loop (send times do not wait for replies, so a server slower than the rate builds a
queue): Constant(rate), one request every 1/rate s; Poisson(rate, seed), exponential gaps;
Gamma(rate, burstiness, seed), gaps ~ Gamma(shape=k, scale=1/(k*rate)) with k the
burstiness, so the mean rate stays `rate` and the gaps' coefficient of variation is
1/sqrt(k): k=1 is Poisson, k<1 burstier, k>1 more even. Seeded generators: the same seed
gives the same schedule. An open-loop profile may cap the requests in flight
(max_concurrency, as `vllm bench serve`): a capped send waits, and the wait is recorded.

Closed-loop: Concurrency(n), n requests in flight, the next sent when one finishes;
Synchronous = Concurrency(1); Throughput, every request at once (or up to max_concurrency).

Ramp-up, whose requests are marked in_ramp and left out of measurement (at most one of):
- seconds: the rate (or the concurrency) rises linearly from 0 to the target over that time.
  Open-loop, the profile's own gaps are laid on a warped clock: an arrival at time u of the
  target-rate process is sent at t = sqrt(2*T*u) while u < T/2, then at t = u + T/2, which
  is exactly a rate rising as rate*t/T (a time change of the arrival process). Closed-loop,
  the cap is ceil(n*t/T) (at least 1).
- requests: the same linear rise, over a number of requests: open-loop, the ramp lasts
  T = 2*requests/rate (a linear rise from 0 sends rate*T/2 requests) and the first
  `requests` requests are in_ramp; closed-loop, the cap after k sends is ceil(n*(k+1)/R).
- warmup: that many requests at the full target, marked in_ramp (a plain warmup count).

A level ends after Limit.requests measured requests or Limit.duration_s seconds of
measured load (whichever comes first); the ramp comes on top of either.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


def _positive(name: str, value: float) -> None:
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class Constant:
    """One request every 1/rate seconds."""

    rate: float
    max_concurrency: int | None = None
    kind = "constant"
    open_loop = True

    def __post_init__(self) -> None:
        _positive("rate", self.rate)

    def gaps(self) -> Iterator[float]:
        while True:
            yield 1.0 / self.rate


@dataclass(frozen=True)
class Poisson:
    """Exponential gaps at rate (a Poisson process), from a seeded generator."""

    rate: float
    seed: int = 0
    max_concurrency: int | None = None
    kind = "poisson"
    open_loop = True

    def __post_init__(self) -> None:
        _positive("rate", self.rate)

    def gaps(self) -> Iterator[float]:
        rng = random.Random(self.seed)
        while True:
            yield rng.expovariate(self.rate)


@dataclass(frozen=True)
class Gamma:
    """Gamma gaps, shape k = burstiness and scale 1/(k*rate): mean 1/rate, CV 1/sqrt(k)."""

    rate: float
    burstiness: float = 1.0
    seed: int = 0
    max_concurrency: int | None = None
    kind = "gamma"
    open_loop = True

    def __post_init__(self) -> None:
        _positive("rate", self.rate)
        _positive("burstiness", self.burstiness)

    def gaps(self) -> Iterator[float]:
        rng = random.Random(self.seed)
        k = self.burstiness
        while True:
            yield rng.gammavariate(k, 1.0 / (k * self.rate))


@dataclass(frozen=True)
class Concurrency:
    """n requests in flight; the next is sent when one finishes."""

    n: int
    kind = "concurrency"
    open_loop = False

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.n}")

    def slots(self, total: int | None) -> int:
        return self.n


@dataclass(frozen=True)
class Synchronous(Concurrency):
    """One request at a time: Concurrency(1)."""

    n: int = 1
    kind = "synchronous"


@dataclass(frozen=True)
class Throughput:
    """Every request at once (within the open-file limit), or up to max_concurrency in
    flight (closed-loop at the cap)."""

    max_concurrency: int | None = None
    kind = "throughput"
    open_loop = False

    def slots(self, total: int | None) -> int:
        if self.max_concurrency:
            return self.max_concurrency
        if total is None:
            raise ValueError("throughput with a duration limit needs max_concurrency "
                             "(all at once needs a number of requests)")
        return total


OpenLoop = Constant | Poisson | Gamma
ClosedLoop = Concurrency | Throughput
Profile = OpenLoop | ClosedLoop


@dataclass(frozen=True)
class Ramp:
    """Ramp-up before measurement; at most one of seconds, requests, warmup (module doc)."""

    seconds: float = 0.0
    requests: int = 0
    warmup: int = 0

    def __post_init__(self) -> None:
        if sum(1 for v in (self.seconds, self.requests, self.warmup) if v) > 1:
            raise ValueError("a ramp is seconds, requests or warmup, not several")
        if self.seconds < 0 or self.requests < 0 or self.warmup < 0:
            raise ValueError("ramp values must be >= 0")


@dataclass(frozen=True)
class Limit:
    """When a level stops sending: after `requests` measured requests and/or `duration_s`
    seconds after the load reached its target, whichever comes first."""

    requests: int | None = None
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if self.requests is None and self.duration_s is None:
            raise ValueError("a load level needs a number of requests or a duration")
        if self.requests is not None and self.requests < 1:
            raise ValueError("requests must be >= 1")
        if self.duration_s is not None:
            _positive("duration_s", self.duration_s)


def ramp_seconds(profile: OpenLoop, ramp: Ramp) -> float:
    """The length of an open-loop ramp's linear rise: seconds, or 2*requests/rate."""
    return ramp.seconds or (2.0 * ramp.requests / profile.rate if ramp.requests else 0.0)


def warp(u: float, ramp_s: float) -> float:
    """Send time of an arrival at u on the target-rate clock, under a linear rise over
    ramp_s seconds (the inverse of the cumulative rate; identity without a ramp)."""
    if ramp_s <= 0:
        return u
    return math.sqrt(2.0 * ramp_s * u) if u < ramp_s / 2 else u + ramp_s / 2


def open_schedule(profile: OpenLoop, ramp: Ramp = Ramp()) -> Iterator[tuple[float, bool]]:
    """(send offset in seconds from the level's start, in_ramp) of each request, in order;
    the first request goes at 0. Endless: the caller's limit ends it."""
    ramp_s = ramp_seconds(profile, ramp)
    u = 0.0
    for i, gap in enumerate(profile.gaps()):
        t = warp(u, ramp_s)
        if ramp.requests:
            in_ramp = i < ramp.requests
        elif ramp.warmup:
            in_ramp = i < ramp.warmup
        else:  # summed gaps carry rounding: an arrival due at the ramp's end is past it
            in_ramp = t < ramp_s * (1 - 1e-9)
        yield t, in_ramp
        u += gap


def closed_cap(n: int, ramp: Ramp, elapsed_s: float, index: int) -> tuple[int, bool, float]:
    """For the request about to be sent (index, elapsed_s since the level's start): the
    in-flight cap, whether it is in the ramp, and the seconds until the cap next rises
    (inf when it no longer changes with time)."""
    if ramp.seconds and elapsed_s < ramp.seconds:
        cap = max(1, math.ceil(n * elapsed_s / ramp.seconds))
        step = ramp.seconds / n  # the cap rises by one every ramp.seconds / n
        return cap, True, (math.floor(elapsed_s / step) + 1) * step - elapsed_s + 1e-6
    if ramp.requests and index < ramp.requests:
        return max(1, math.ceil(n * (index + 1) / ramp.requests)), True, math.inf
    return n, index < ramp.warmup, math.inf


def from_spec(spec: Mapping[str, Any]) -> Profile:
    """A profile from plain settings: {"kind": "poisson", "rate": 4, "seed": 1}, ..."""
    kinds: dict[str, type] = {c.kind: c for c in (Constant, Poisson, Gamma, Concurrency,
                                                   Synchronous, Throughput)}
    args = dict(spec)
    kind = args.pop("kind", None)
    if kind not in kinds:
        raise ValueError(f"unknown load profile {kind!r}; one of {sorted(kinds)}")
    profile: Profile = kinds[kind](**args)
    return profile


def describe(profile: Profile) -> str:
    """A short label: 'poisson rate=4 seed=1', 'concurrency n=8'."""
    fields = {k: v for k, v in vars(profile).items() if v is not None}
    return " ".join([profile.kind] + [f"{k}={v}" for k, v in fields.items()])
