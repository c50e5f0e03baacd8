"""Server mode's load side: the client's timing overhead and the open-loop rate it sustains.

The server is tests/support/fake_openai in a subprocess pinned to its own core (select()
timers: its delays are exact to well under a millisecond); this process, the load
generator, is pinned to the other core, so neither steals the other's CPU.

(a) Overhead: Poisson arrivals at 200 requests/s for ~10 s against fixed delays (TTFT 20 ms,
then one token every 5 ms, 16 tokens). What the client measures minus the known delay is
what the client (and loopback HTTP, and the fake server's own work) adds: TTFT - 20 ms, and
|ITL - 5 ms| per gap between content chunks. Goal: p99 under 1 ms.
(b) Throughput: constant-rate levels of ~1.5 s against a server with no delay (4 tokens a
request), rising until the achieved send rate falls under 0.95 of the target: the highest
level that held is what the generator sustains on one core (the fake server, on the other
core, may be the limit instead: its in-flight count is printed).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

from benchmarks.figures import Figure

ROOT = Path(__file__).resolve().parents[1]
TTFT_S, ITL_S, TOKENS = 0.020, 0.005, 16


@contextlib.contextmanager
def served(cpu: int | None, **behaviour: float) -> Iterator[str]:
    """The fake server in a subprocess (pinned to cpu when given); yields its base URL."""
    args = [a for k, v in behaviour.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    # its stderr (an overloaded aiohttp server complains) is shown only if it fails to start
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "tests.support.fake_openai", *args],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            if cpu is not None:
                os.sched_setaffinity(proc.pid, {cpu})
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            if not url.startswith("http://"):
                err.seek(0)
                raise RuntimeError(f"the fake server did not start (exit {proc.poll()}):\n"
                                   + err.read()[-2000:])
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """This process on one core for the block (the other benchmarks get theirs back)."""
    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def q(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(p * 10) - 1]


def overhead(url: str, seconds: float, rate: float) -> dict[str, float]:
    """Measured minus known delays, and where the difference arises, from the fake server's
    own record of each request's arrival and writes (same clock: CLOCK_MONOTONIC)."""
    from llem.harness.server.client import GenParams
    from llem.harness.server.loadgen import run_load
    from llem.harness.server.profiles import Limit, Poisson, Ramp

    warmup = 50
    prompts = [f"Tell me story number {i}." for i in range(int(rate * seconds * 1.5) + warmup)]
    c0 = time.process_time()
    res = run_load(url, "fake", prompts, Poisson(rate, seed=1),
                   GenParams(max_tokens=TOKENS, ignore_eos=True), limit=Limit(duration_s=seconds),
                   ramp=Ramp(warmup=warmup), saturation=None)
    cpu = time.process_time() - c0
    ok = [r for r in res.measured if r.ok]
    assert len(ok) == len(res.measured), [r.error for r in res.measured if not r.ok][:3]
    with urllib.request.urlopen(f"{url}/fake/timeline", timeout=30) as f:
        timeline = json.load(f)
    ttft = [(r.first_token_s - r.sent_s - TTFT_S) * 1e3 for r in ok]
    itl = [abs(b - a - ITL_S) * 1e3 for r in ok for a, b in pairwise(r.chunk_times_s)]
    wait = [(r.sent_s - r.scheduled_s) * 1e3 for r in ok]
    request_leg, late, response_leg = [], [], []
    for r in ok:
        seen = timeline[prompts[r.index % len(prompts)]]
        writes = seen["writes_s"]
        if len(writes) != len(r.chunk_times_s):
            continue
        request_leg.append((seen["arrived_s"] - r.sent_s) * 1e3)
        late += [(w - seen["arrived_s"] - TTFT_S - k * ITL_S) * 1e3
                 for k, w in enumerate(writes)]
        response_leg += [(t - w) * 1e3 for t, w in zip(r.chunk_times_s, writes)]
    return {"n": len(ok), "rate": res.achieved_rate_per_s or 0.0, "ttft50": q(ttft, 50),
            "ttft99": q(ttft, 99), "itl50": q(itl, 50), "itl99": q(itl, 99),
            "wait50": q(wait, 50), "wait99": q(wait, 99), "in_flight": res.max_in_flight,
            "cpu_us": cpu / len(res.replies) * 1e6, "req50": q(request_leg, 50),
            "req99": q(request_leg, 99), "late50": q(late, 50), "late99": q(late, 99),
            "resp50": q(response_leg, 50), "resp99": q(response_leg, 99),
            "matched": len(request_leg)}


def highest_rate(url: str, level_s: float,
                 rates: list[float]) -> list[tuple[float, float, int, float]]:
    """(target, achieved, max in flight, client CPU share) per level, up to the first that
    did not hold. A CPU share near 1 says the generator was the limit; well under 1 with a
    growing in-flight count says the fake server was."""
    from llem.harness.server.client import GenParams
    from llem.harness.server.loadgen import run_load
    from llem.harness.server.profiles import Constant, Limit

    out = []
    for rate in rates:
        c0, t0 = time.process_time(), time.perf_counter()
        res = run_load(url, "fake", ["p"], Constant(rate), GenParams(max_tokens=4),
                       limit=Limit(requests=int(rate * level_s)), saturation=None)
        share = (time.process_time() - c0) / (time.perf_counter() - t0)
        out.append((rate, res.achieved_rate_per_s or 0.0, res.max_in_flight, share))
        if out[-1][1] < 0.95 * rate:
            break
    return out


def run(seconds: float = 10.0, rate: float = 200.0, level_s: float = 1.5,
        rates: tuple[float, ...] = (500, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000)
        ) -> list[Figure]:
    load_before = os.getloadavg()[0]
    cpus = sorted(os.sched_getaffinity(0))
    client_cpu, server_cpu = (cpus[0], cpus[1]) if len(cpus) > 1 else (None, None)
    with served(server_cpu, ttft_s=TTFT_S, itl_s=ITL_S, record=True) as url, \
            pinned(client_cpu):
        o = overhead(url, seconds, rate)
    with served(server_cpu) as url, pinned(client_cpu):
        levels = highest_rate(url, level_s, list(rates))
    held = [lv for lv in levels if lv[1] >= 0.95 * lv[0]]
    best = held[-1] if held else levels[0]
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    print(f"client on CPU {client_cpu}, fake server on CPU {server_cpu}; {load} (other "
          "work on these cores shows up as overhead: rerun on a quiet machine)")
    print(f"(a) Poisson {rate:.0f}/s for {seconds:.0f} s, {o['n']:.0f} requests (achieved "
          f"{o['rate']:.0f}/s, up to {o['in_flight']:.0f} in flight), known TTFT "
          f"{TTFT_S * 1e3:.0f} ms and ITL {ITL_S * 1e3:.0f} ms x {TOKENS} tokens:")
    print(f"    TTFT - known: p50 {o['ttft50']:.3f} ms, p99 {o['ttft99']:.3f} ms")
    print(f"    |ITL - known|: p50 {o['itl50']:.3f} ms, p99 {o['itl99']:.3f} ms")
    print(f"    send lag (sent - scheduled): p50 {o['wait50']:.3f} ms, p99 {o['wait99']:.3f} "
          f"ms; client CPU {o['cpu_us']:.0f} us per request (16 chunks)")
    print(f"    where the differences arise ({o['matched']:.0f} requests matched to the "
          "server's record), p50 / p99 ms:")
    print(f"      request leg (client sends .. server handler): {o['req50']:.3f} / "
          f"{o['req99']:.3f}")
    print(f"      fake server late on its own schedule:         {o['late50']:.3f} / "
          f"{o['late99']:.3f} (every write)")
    print(f"      response leg (server write .. client chunk):  {o['resp50']:.3f} / "
          f"{o['resp99']:.3f} (every chunk)")
    print("(b) constant-rate levels, no server delay, 4 tokens: target -> achieved "
          "(ratio, max in flight, client CPU share of its core)")
    for target, achieved, fl, share in levels:
        print(f"    {target:6.0f}/s -> {achieved:7.1f}/s ({achieved / target:.3f}, {fl} in "
              f"flight, CPU {share:.2f})")
    note = f"Poisson {rate:.0f}/s, {o['n']:.0f} requests; {load}"
    return [
        Figure("7 server client", "TTFT overhead p50 (measured - known)", o["ttft50"],
               TTFT_S * 1e3, "ms", "overhead", "known TTFT", "value < 1", note),
        Figure("7 server client", "TTFT overhead p99 (measured - known)", o["ttft99"],
               TTFT_S * 1e3, "ms", "overhead", "known TTFT", "value < 1", note),
        Figure("7 server client", "ITL overhead p50 |measured - known|", o["itl50"],
               ITL_S * 1e3, "ms", "overhead", "known ITL", "value < 1", note),
        Figure("7 server client", "ITL overhead p99 |measured - known|", o["itl99"],
               ITL_S * 1e3, "ms", "overhead", "known ITL", "value < 1", note),
        Figure("7 server client", "client response leg p99 (chunk read - server write)",
               o["resp99"], ITL_S * 1e3, "ms", "client", "known ITL", "value < 1",
               "from the fake server's record of its writes: the client's own share"),
        Figure("7 server client", "highest open-loop rate held on one core, achieved / "
               "target", best[1], best[0], "req/s", "achieved", "target", ">= 0.95",
               f"levels of {level_s:g} s; next level: " + (
                   f"{levels[-1][1]:.0f} of {levels[-1][0]:.0f}/s" if levels[-1] is not best
                   else "none tried (all held)")),
    ]


def main() -> list[Figure]:
    return run()


if __name__ == "__main__":
    main()
