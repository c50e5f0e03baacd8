"""A simulated cluster and clock driving llem.scheduler.core.SchedulerCore: no Ray, no sleep.

Events wait in a priority queue of simulated times: a worker starts START_S after its Start
(at once when an idle process is reused), a job finishes after its duration (plus its
group's model load when it is the worker's first job of the group), a worker process dies
now and then, nodes are lost at random times and come back later under a new id. The
decisions are the core's own; the simulator only carries them out and checks that every
job ends exactly once (finished or failed).

    from llem.scheduler.sim import workload, simulate
    simulate(workload(1024, seed=1), losses=4)   # -> SimResult
"""

from __future__ import annotations

import gc
import heapq
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llem.scheduler.core import START_S, CoreGroup, Decision, Fail, Kill, SchedulerCore, Send, Start
from llem.scheduler.placement import ACCEL_PREFIX, Books, Need

H100 = {"GPU": 8.0, "CPU": 96.0, ACCEL_PREFIX + "H100": 1.0}
A100 = {"GPU": 4.0, "CPU": 48.0, ACCEL_PREFIX + "A100": 1.0}


@dataclass
class Workload:
    nodes: list[tuple[str, dict[str, float]]]
    groups: list[CoreGroup]
    duration: list[float]  # job id -> seconds
    load_s: dict[int, float]  # group id -> model load seconds
    accel: dict[int, str | None]  # group id -> required accelerator type

    @property
    def gpus(self) -> int:
        return int(sum(r["GPU"] for _, r in self.nodes))

    def bound(self) -> tuple[float, float, float]:
        """A lower bound on the makespan: (bound, work, chain); bound = max(work, chain).

        Proof. Let C be the makespan of any run of this workload (a lost node only takes
        capacity away; a crashed job only adds work). No GPU runs anything before START_S
        (no worker process exists before the first has started), and a worker of group g
        holds its w_g GPUs, loads g's model (L_g) before its first job of g (a reused
        process too) and then runs g's jobs one after another. So one worker runs at most
        C - START_S - L_g seconds of g's jobs, and g, whose jobs last D_g seconds in all,
        has k_g(C) >= ceil(D_g / (C - START_S - L_g)) workers, each paying L_g: g takes at
        least w_g x (D_g + k_g(C) x L_g) GPU-seconds, all within [START_S, C]. Hence
        sum over g of w_g (D_g + k_g(C) L_g) <= GPUs x (C - START_S), and the same over the
        groups tied to an accelerator type against that type's GPUs. The left side never
        grows with C and the right side grows, so every C that fails a condition is below
        the makespan: work is such a C (the low end of a bisection). chain: the longest
        single job after START_S and its model load (a job is never split).

        With k_g = 1 (one load per group) and no START_S this is the plain bound, total GPU
        work over GPUs (plain_work); k_g counts the loads any run must pay beyond one a
        group when a group's jobs outlast one worker's time."""
        total, per_type = self._gpus()
        chain = START_S + max(self.load_s[g.gid] + max(self.duration[j] for j in g.jobs)
                              for g in self.groups)
        work = 0.0
        for a, gpus in [(None, total), *per_type.items()]:
            mine = [(sum(self.duration[j] for j in g.jobs), self.load_s[g.gid], g.need.gpus)
                    for g in self.groups if a is None or self.accel[g.gid] == a]
            work = max(work, _smallest_feasible(mine, gpus, chain))
        return max(work, chain), work, chain

    def plain_work(self) -> float:
        """Every job's GPU-seconds plus one model load per group, over the GPUs that may run
        it (per accelerator type too): the bound before the loads a split must pay."""
        total, per_type = self._gpus()
        work, typed = 0.0, dict.fromkeys(per_type, 0.0)
        for g in self.groups:
            w = (sum(self.duration[j] for j in g.jobs) + self.load_s[g.gid]) * g.need.gpus
            work += w
            a = self.accel[g.gid]
            if a:
                typed[a] += w
        return max([work / total] + [typed[a] / per_type[a] for a in typed if per_type[a]])

    def _gpus(self) -> tuple[float, dict[str, float]]:
        total = sum(r["GPU"] for _, r in self.nodes)
        per_type: dict[str, float] = {}
        for _, r in self.nodes:
            for k in r:
                if k.startswith(ACCEL_PREFIX):
                    a = k[len(ACCEL_PREFIX):]
                    per_type[a] = per_type.get(a, 0.0) + r["GPU"]
        return total, per_type


def _smallest_feasible(groups: list[tuple[float, float, int]], gpus: float,
                       chain: float) -> float:
    """The largest C found to fail sum w (D + ceil(D / (C - START_S - L)) L) <= gpus x
    (C - START_S) (see Workload.bound), by bisection above chain; groups: (D, L, w)."""
    if not groups or gpus <= 0:
        return 0.0

    def fits(c: float) -> bool:
        need = sum(w * (d + math.ceil(d / (c - START_S - load) - 1e-9) * load)
                   for d, load, w in groups)
        return need <= gpus * (c - START_S)

    lo = chain  # every worker's time is positive above it: C >= chain anyway
    hi = 2 * chain
    while not fits(hi):
        lo, hi = hi, 2 * hi
    while hi - lo > 0.01:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return lo


def workload(gpus: int, seed: int = 0, jobs_per_gpu: float = 30.0) -> Workload:
    """gpus GPUs: 3/4 of them on 8 x H100 nodes, the rest on 4 x A100 nodes; load groups of
    skewed size (Pareto), model loads of 10-120 s, jobs of 15-300 s (a group's jobs within
    +-40% of its own mean), 1, 2, 4 or 8 GPUs a job, some groups tied to a GPU type."""
    rng = random.Random(seed)
    h = max(1, round(0.75 * gpus / 8))
    a = max(0, (gpus - 8 * h) // 4)
    nodes = [(f"h{i}", dict(H100)) for i in range(h)] + [(f"a{i}", dict(A100))
                                                          for i in range(a)]
    target = jobs_per_gpu * gpus
    groups: list[CoreGroup] = []
    duration: list[float] = []
    load_s: dict[int, float] = {}
    accel: dict[int, str | None] = {}
    jobs_gpus = 0.0
    while jobs_gpus < target:
        gid = len(groups)
        width = rng.choices([1, 2, 4, 8], [70, 15, 10, 5])[0]
        kind = "H100" if width == 8 else rng.choices(["H100", "A100", None], [2, 1 if a else 0,
                                                                               7])[0]
        n = max(1, min(int(rng.paretovariate(1.3) * 6), 2000))
        mean = rng.uniform(15, 300)
        jobs = []
        for _ in range(n):
            jobs.append(len(duration))
            duration.append(min(300.0, max(15.0, mean * rng.uniform(0.6, 1.4))))
        amounts = {"GPU": float(width)}
        if kind:
            amounts[ACCEL_PREFIX + kind] = 0.001
        need = Need(tuple(sorted(amounts.items())), width)
        groups.append(CoreGroup(gid, need, rng.choice(["vllm", "transformers"]),
                                deque(jobs)))
        load_s[gid] = rng.uniform(10, 120)
        accel[gid] = kind
        jobs_gpus += n * width * mean / 100.0  # ~ jobs of 100 s per GPU
    return Workload(nodes, groups, duration, load_s, accel)


@dataclass
class SimResult:
    gpus: int
    jobs: int
    groups: int
    makespan_s: float
    bound_s: float
    spread_s: float
    chain_s: float
    loads: int
    events: int
    core_cpu_s: float  # CPU time inside the core (its decisions), the whole campaign
    setup_cpu_s: float  # of which the first call (every group queued, the first workers)
    event_cpu_p99_s: float
    event_cpu_max_s: float
    lost_nodes: int
    failed: int
    rescheduled: int = 0
    busy_gpu_s: float = 0.0  # GPU-seconds in jobs and model loads (worker starts excluded)
    load_gpu_s: float = 0.0  # of which model loads
    plain_bound_s: float = 0.0  # max(Workload.plain_work, the longest job after its load):
    # the bound as it was before the loads of splits and the first start were counted

    @property
    def idle_share(self) -> float:
        """The share of GPU time (makespan x GPUs) in neither a job nor a model load."""
        return 1.0 - self.busy_gpu_s / max(1e-9, self.makespan_s * self.gpus)


def simulate(wl: Workload, losses: int = 0, crash_p: float = 0.0, seed: int = 0,
             retries: int = 2) -> SimResult:
    """Run wl to the end; losses nodes are lost at random times within the bound (each comes
    back 600 s later as a new node); crash_p: chance that a job kills its worker process."""
    rng = random.Random(seed + 1)
    bound, spread, chain = wl.bound()
    plain = max(wl.plain_work(), chain - START_S)  # before the run takes the jobs out
    core = SchedulerCore(Books.from_nodes([{"node_id": n, "resources": r}
                                           for n, r in wl.nodes]), retries=retries)
    heap: list[tuple[float, int, str, tuple[Any, ...]]] = []  # (time, seq, kind, args)
    seq = 0

    def push(t: float, kind: str, *args: object) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, kind, args))

    node_of: dict[int, str] = {}  # live worker -> node
    token: dict[int, int] = {}  # live worker -> its pending event's seq (stale ones skipped)
    ended: dict[int, str] = {}  # job -> "ok" / "failed": each exactly once
    now = 0.0
    rescheduled = 0
    busy_gpu_s = load_gpu_s = 0.0

    def apply(decisions: list[Decision]) -> None:
        nonlocal busy_gpu_s, load_gpu_s
        for d in decisions:
            if isinstance(d, Start):
                node_of[d.worker] = d.node
                if not d.reuse:
                    push(now + START_S, "started", d.worker)
            elif isinstance(d, Send):
                crash = rng.random() < crash_p
                t = now + (wl.load_s[core.workers[d.worker].group.gid] if d.load else 0.0)
                width = core.workers[d.worker].group.need.gpus
                load_gpu_s += (t - now) * width
                t += wl.duration[d.job] * (0.5 if crash else 1.0)
                busy_gpu_s += (t - now) * width
                push(t, "died" if crash else "finished", d.worker, d.job, d.load)
                token[d.worker] = seq
            elif isinstance(d, Kill):
                node_of.pop(d.worker, None)
                token.pop(d.worker, None)
            elif isinstance(d, Fail):
                assert d.job not in ended, f"job {d.job} ended twice"
                ended[d.job] = "failed"

    times: list[float] = []

    def timed(call: Callable[..., list[Decision]], *args: Any) -> None:
        t0 = time.process_time()
        out = call(*args)
        times.append(time.process_time() - t0)
        apply(out)

    t0 = time.process_time()
    apply(core.add_groups(wl.groups))
    setup = time.process_time() - t0
    # the campaign's long-lived objects leave the collector's generations: a full collection
    # over them (~1e6 objects at 10,000 GPUs) was one 21 ms pause in a decision
    gc.freeze()
    names = [n for n, _ in wl.nodes]
    for t in sorted(rng.uniform(0.05, 0.8) * bound for _ in range(losses)):
        push(t, "lose", rng.choice(names))
    while heap:
        now, s, kind, args = heapq.heappop(heap)
        if kind == "lose":
            node = str(args[0])
            if node not in core.books.nodes or not core.books.nodes[node].alive:
                continue
            gone = [w for w, n in node_of.items() if n == node]
            rescheduled += sum(1 for w in gone if core.workers.get(w) is not None
                               and core.workers[w].job is not None)
            for w in gone:
                node_of.pop(w, None)
                token.pop(w, None)
            timed(core.node_lost, node)
            push(now + 600.0, "add", node + "+", dict(core.books.nodes[node].total))
        elif kind == "add":
            names.append(str(args[0]))
            timed(core.node_added, args[0], args[1])
        elif args[0] not in node_of:
            continue  # its node was lost, or it was killed
        elif kind == "started":
            timed(core.worker_started, args[0])
        elif token.get(args[0]) != s:
            continue
        elif kind == "finished":
            wid, job, load = args
            assert job not in ended, f"job {job} ended twice"
            ended[job] = "ok"
            timed(core.job_finished, wid, job, wl.duration[job],
                  wl.load_s[core.workers[wid].group.gid] if load else 0.0)
        elif kind == "died":
            node_of.pop(args[0], None)
            token.pop(args[0], None)
            timed(core.worker_died, args[0])
    gc.unfreeze()
    jobs = len(wl.duration)
    assert len(ended) == jobs, f"{jobs - len(ended)} jobs never ended"
    times.sort()
    return SimResult(wl.gpus, jobs, len(wl.groups), now, bound, spread, chain, core.loads,
                     core.events, setup + sum(times), setup,
                     times[int(0.99 * (len(times) - 1))] if times else 0.0,
                     times[-1] if times else 0.0, losses,
                     sum(1 for v in ended.values() if v == "failed"), rescheduled, busy_gpu_s,
                     load_gpu_s, plain)
