"""How close to llem.scheduler.sim.Workload.bound a schedule that knows everything gets.

For the simulated workloads of benchmarks.scale (llem.scheduler.sim.workload; no node
loss, no crash) an offline plan is built knowing every group's jobs and their true times,
its model load, its width (GPUs a job, all on one node) and its GPU-type tie, and every
node. The plan is a list of workers (node, GPUs, start, group, jobs, fresh process or a
reused one) checked by `validate`: every job exactly once, by a worker of its group, on
width GPUs of one node of its type, no GPU running two workers at once, each worker paying
its group's model load before its first job (and START_S first when its process is new; a
process is reused only by the next worker on the same GPUs with the same backend and need,
as the core reuses an idle one). Its makespan is the last worker's end.

The plan (`pack`) for a makespan C: every GPU a timeline, filled widest groups first
(8-GPU groups on whole H100 nodes, then aligned halves for the 4-GPU groups, and so on, so
a block's GPUs are free at the same time and nothing waits for a wide job). Within a width,
tied groups first, each in decreasing size (START_S + load + jobs), take the block that
holds them whole with the least time left; a group no block holds whole fills the block
with the most time left (the longest jobs that fit, then swaps of a job for a longer one
left out while that fills more) and its other jobs come back as a new piece, paying the
load again. A tied group takes only blocks of its type; an untied one the best fit over
both types, or each type in turn (variants "H100", "A100"); variants "top...": every tied
group placed first, down from C, the untied ones then up from 0. --chains cuts each group
into k_g(C) near-equal chains before packing them (the plain first-fit-decreasing plan).
The smallest C that some variant packs is found by bisection from the bound (then a few C
below it: the packing is not monotone); that plan is validated and its makespan reported.

    python -m benchmarks.makespan_oracle                       # 64 and 1,024 GPUs, seeds 1-10
    python -m benchmarks.makespan_oracle --gpus 1024 --seeds 1-3
    python -m benchmarks.makespan_oracle --relax untie,noload   # what ties and loads cost

Beside it, per seed: the online core's makespan / bound (llem.scheduler.sim.simulate, as
benchmarks.scale runs it: crash_p 0.002; and with no crash), the model loads of each, and
the bound's own loads (the sum of k_g at the bound), and where the plan's GPU time goes.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import math
import time
from collections import deque
from dataclasses import dataclass

from llem.scheduler.core import START_S, CoreGroup
from llem.scheduler.placement import ACCEL_PREFIX, Need
from llem.scheduler.sim import Workload, simulate, workload

EPS = 1e-6
VARIANTS = ("best", "H100", "A100", "top", "topH100", "topA100")
Hit = tuple[tuple[float, int], str | None, int]  # ((time left, block), its type, index)


@dataclass(frozen=True)
class Worker:
    node: int  # index into Workload.nodes
    gpus: tuple[int, ...]  # GPU indices on that node
    start: float  # when its process starts (fresh) or takes over the GPUs (reused)
    gid: int
    jobs: tuple[int, ...]
    fresh: bool  # a new process: START_S before the model load


def node_type(resources: dict[str, float]) -> str | None:
    return next((k[len(ACCEL_PREFIX):] for k in resources if k.startswith(ACCEL_PREFIX)), None)


def end(wl: Workload, w: Worker) -> float:
    return (w.start + (START_S if w.fresh else 0.0) + wl.load_s[w.gid]
            + sum(wl.duration[j] for j in w.jobs))


def validate(wl: Workload, plan: list[Worker]) -> float:
    """The plan's makespan; ValueError at its first fault."""
    groups = {g.gid: g for g in wl.groups}
    owner = {j: g.gid for g in wl.groups for j in g.jobs}
    seen: set[int] = set()
    lanes: dict[tuple[int, int], list[tuple[float, float, int]]] = {}
    for i, w in enumerate(plan):
        g = groups.get(w.gid)
        if g is None or not w.jobs:
            raise ValueError(f"worker {i}: no group {w.gid} or no job")
        for j in w.jobs:
            if owner.get(j) != w.gid or j in seen:
                raise ValueError(f"worker {i}: job {j} not of group {w.gid} or run twice")
            seen.add(j)
        if not 0 <= w.node < len(wl.nodes):
            raise ValueError(f"worker {i}: no node {w.node}")
        res = wl.nodes[w.node][1]
        if (len(set(w.gpus)) != g.need.gpus or len(w.gpus) != g.need.gpus
                or not all(0 <= x < res["GPU"] for x in w.gpus)):
            raise ValueError(f"worker {i}: GPUs {w.gpus} are not {g.need.gpus} of its node")
        if wl.accel[w.gid] and node_type(res) != wl.accel[w.gid]:
            raise ValueError(f"worker {i}: group tied to {wl.accel[w.gid]} on {node_type(res)}")
        if w.start < 0:
            raise ValueError(f"worker {i}: starts before 0")
        for x in w.gpus:
            lanes.setdefault((w.node, x), []).append((w.start, end(wl, w), i))
    if len(seen) != len(wl.duration):
        raise ValueError(f"{len(wl.duration) - len(seen)} jobs never run")
    for (node, x), spans in lanes.items():
        spans.sort()
        for k, (s, _, i) in enumerate(spans):
            if k and spans[k - 1][1] > s + EPS:
                raise ValueError(f"node {node} GPU {x}: workers {spans[k - 1][2]} and {i} "
                                 "overlap")
            if plan[i].fresh:
                continue
            prev = plan[spans[k - 1][2]] if k else None
            if (prev is None or prev.gpus != plan[i].gpus or prev.node != plan[i].node
                    or key(groups[prev.gid]) != key(groups[plan[i].gid])):
                raise ValueError(f"worker {i} reuses a process its GPUs do not have idle")
    return max(end(wl, w) for w in plan)


def key(g: CoreGroup) -> tuple[object, ...]:
    """What an idle process can be reused for (llem.scheduler.core: backend and need)."""
    return g.backend, g.need


def pack(wl: Workload, c: float, variant: str = "best") -> list[Worker] | None:
    """A plan ending by c, or None where this variant finds none. Variants "top...": every
    tied group first, placed down from c (widest first too), then the untied ones up from
    0 as the variant after "top" places them."""
    assert all(g.gid == i for i, g in enumerate(wl.groups)), "group ids are their index"
    kind = [node_type(r) for _, r in wl.nodes]
    kinds = sorted(set(kind), key=str)
    bottom = [[0.0] * int(r["GPU"]) for _, r in wl.nodes]  # free from, per GPU
    top = [[c] * int(r["GPU"]) for _, r in wl.nodes]  # free until
    last = [[-1] * int(r["GPU"]) for _, r in wl.nodes]  # its latest worker from below
    plan: list[Worker] = []
    chains = variant.startswith("eq")
    variant = variant[2:] if chains else variant
    down_first = variant.startswith("top")
    variant = (variant[3:] or "best") if down_first else variant
    widths = sorted({g.need.gpus for g in wl.groups}, reverse=True)
    for width, down in [(w, True) for w in widths if down_first] + [(w, False) for w in widths]:
        items = []
        for g in wl.groups:
            if g.need.gpus == width and (not down_first or (wl.accel[g.gid] is not None) == down):
                for part in _chains(wl, g.gid, c) if chains else [sorted(
                        g.jobs, key=lambda j: -wl.duration[j])]:
                    items.append((wl.accel[g.gid] is None, -START_S - wl.load_s[g.gid]
                                  - sum(wl.duration[j] for j in part), g.gid, part))
        if not items:
            continue
        heapq.heapify(items)
        blocks = [(n, tuple(range(o, o + width))) for n in range(len(wl.nodes))
                  for o in range(0, len(bottom[n]) - width + 1, width)]

        def cap(b: tuple[int, tuple[int, ...]]) -> float:
            return min(top[b[0]][x] for x in b[1]) - max(bottom[b[0]][x] for x in b[1])

        bins: dict[str | None, list[tuple[float, int]]] = {k: [] for k in kinds}
        for i, b in enumerate(blocks):
            bins[kind[b[0]]].append((cap(b), i))
        for v in bins.values():
            v.sort()
        while items:
            free, neg, gid, jobs = heapq.heappop(items)
            need, load, tie = -neg, wl.load_s[gid], wl.accel[gid]
            allowed: list[str | None] = [tie] if tie else sorted(kinds, key=lambda k: k != variant)
            least = START_S + load + wl.duration[jobs[-1]]
            hit = _choose(bins, allowed, need, least, variant in kinds)
            if hit is None:
                return None
            (r, bi), k, at = hit
            n, gs = blocks[bi]
            prev = last[n][gs[0]]
            fresh = down or not (prev >= 0 and plan[prev].gpus == gs
                                 and all(last[n][x] == prev for x in gs)
                                 and key(wl.groups[plan[prev].gid]) == key(wl.groups[gid]))
            if r >= need - EPS:
                take, jobs = jobs, []
            else:
                take, jobs = _fill(wl, jobs, r - load - (START_S if fresh else 0.0))
                if not take:
                    return None
            del bins[k][at]
            used = (START_S if fresh else 0.0) + load + sum(wl.duration[j] for j in take)
            start = (min(top[n][x] for x in gs) - used if down
                     else max(bottom[n][x] for x in gs))
            plan.append(Worker(n, gs, start, gid, tuple(take), fresh))
            for x in gs:
                if down:
                    top[n][x] = start
                else:
                    bottom[n][x], last[n][x] = start + used, len(plan) - 1
            bisect.insort(bins[k], (cap(blocks[bi]), bi))
            if jobs:
                rest = START_S + load + sum(wl.duration[j] for j in jobs)
                heapq.heappush(items, (free, -rest, gid, jobs))
    return plan


def _chains(wl: Workload, gid: int, c: float) -> list[list[int]]:
    """The group's jobs in k_g(c) near-equal chains (each job to the shortest chain)."""
    g = wl.groups[gid]
    d = sum(wl.duration[j] for j in g.jobs)
    k = max(1, math.ceil(d / max(EPS, c - 2 * START_S - wl.load_s[gid]) - 1e-9))
    heap: list[tuple[float, int, list[int]]] = [(0.0, i, []) for i in range(min(k, len(g.jobs)))]
    for j in sorted(g.jobs, key=lambda j: -wl.duration[j]):
        t, i, part = heapq.heappop(heap)
        part.append(j)
        heapq.heappush(heap, (t + wl.duration[j], i, part))
    return [part for _, _, part in heap]


def _choose(bins: dict[str | None, list[tuple[float, int]]], allowed: list[str | None],
            need: float, least: float, strict: bool) -> Hit | None:
    """The block for an item of need seconds: the one holding it whole with the least time
    left, else the one with the most time left, when it holds least (it takes a piece);
    strict: each type in turn, before the next is looked at."""
    for ks in ([[k] for k in allowed] if strict else [allowed]):
        fits = []
        for k in ks:
            lst = bins.get(k, [])
            at = bisect.bisect_left(lst, (need - EPS, -1))
            if at < len(lst):
                fits.append((lst[at], k, at))
        if fits:
            return min(fits)
        tops = [(bins[k][-1], k, len(bins[k]) - 1) for k in ks if bins.get(k)]
        if tops and max(tops)[0][0] >= least:
            return max(tops)
    return None


def _fill(wl: Workload, jobs: list[int], gap: float) -> tuple[list[int], list[int]]:
    """Jobs that fill gap seconds, and the rest (both longest first): the longest that
    fits, again and again; then a job taken swapped for a longer one left out where that
    fills more of the gap (a few rounds)."""
    take: list[int] = []
    rest = list(jobs)  # longest first
    neg = [-wl.duration[j] for j in rest]
    for _ in range(4):
        while rest:
            at = bisect.bisect_left(neg, -gap - EPS)
            if at == len(rest):
                break
            gap -= wl.duration[rest[at]]
            take.append(rest.pop(at))
            neg.pop(at)
        best = (EPS, -1, -1)  # (gain, index in take, index in rest)
        for i, j in enumerate(take):
            at = bisect.bisect_left(neg, -(wl.duration[j] + gap) - EPS)
            if at < len(rest) and -neg[at] - wl.duration[j] > best[0]:
                best = (-neg[at] - wl.duration[j], i, at)
        if best[1] < 0:
            break
        gain, i, at = best
        out, into = take[i], rest.pop(at)
        neg.pop(at)
        take[i] = into
        gap -= gain
        k = bisect.bisect_left(neg, -wl.duration[out])
        neg.insert(k, -wl.duration[out])
        rest.insert(k, out)
    return take, rest


def oracle(wl: Workload, variants: tuple[str, ...] = VARIANTS,
           step: float = 0.5) -> tuple[float, list[Worker], str]:
    """The smallest makespan found (bisection over c from the bound, every variant tried at
    each c, then a few c below the one found), its validated plan and its variant."""
    bound = wl.bound()[0]

    def attempt(c: float) -> tuple[list[Worker], str] | None:
        for v in variants:
            plan = pack(wl, c, v)
            if plan is not None:
                return plan, v
        return None

    best, lo, hi = attempt(bound), bound, bound
    while best is None:
        if hi > 2 * bound:
            raise RuntimeError("no plan within twice the bound")
        lo, hi = hi, hi * 1.02
        best = attempt(hi)
    while hi - lo > step:
        mid = (lo + hi) / 2
        got = attempt(mid)
        lo, hi, best = (mid, hi, best) if got is None else (lo, mid, got)
    for i in range(1, 9):  # the packing is not monotone in c: a few more below
        got = attempt(hi - i * 0.001 * bound)
        if got is not None and validate(wl, got[0]) < validate(wl, best[0]):
            best = got
    return validate(wl, best[0]), best[0], best[1]


def bound_loads(wl: Workload, c: float) -> dict[int, int]:
    """k_g(c) of the bound: ceil(D_g / (c - START_S - L_g)), the fewest workers of g."""
    return {g.gid: math.ceil(sum(wl.duration[j] for j in g.jobs)
                             / (c - START_S - wl.load_s[g.gid]) - 1e-9) for g in wl.groups}


def where(wl: Workload, plan: list[Worker], makespan: float) -> dict[str, float]:
    """What the plan's GPU time (makespan x GPUs) holds beyond the bound's count at its
    makespan (START_S once a GPU, the jobs, k_g(makespan) loads of each group): idle, model
    loads beyond k_g, process starts beyond one a GPU, as shares of it; idle per GPU type."""
    area = makespan * wl.gpus
    width = {g.gid: g.need.gpus for g in wl.groups}
    k = bound_loads(wl, makespan)
    busy: dict[str | None, float] = {}
    out = {"start": -wl.gpus * START_S / area,
           "load": -sum(k[g.gid] * wl.load_s[g.gid] * g.need.gpus for g in wl.groups) / area}
    for w in plan:
        n = width[w.gid]
        out["start"] += (START_S if w.fresh else 0.0) * n / area
        out["load"] += wl.load_s[w.gid] * n / area
        t = node_type(wl.nodes[w.node][1])
        busy[t] = busy.get(t, 0.0) + (end(wl, w) - w.start) * n
    per: dict[str | None, float] = {}
    for _, r in wl.nodes:
        per[node_type(r)] = per.get(node_type(r), 0.0) + r["GPU"]
    out["idle"] = 1 - sum(busy.values()) / area
    for t, gpus in per.items():
        out[f"idle {t}"] = 1 - busy.get(t, 0.0) / (gpus * makespan)
    return out


def relax(wl: Workload, what: set[str]) -> Workload:
    """wl with "untie": no group tied to a GPU type; "narrow": every w-GPU job w jobs of 1
    GPU (the same GPU-seconds), untied; "noload": model loads of 0 s."""
    groups, duration = [], list(wl.duration)
    for g in wl.groups:
        jobs, need = list(g.jobs), g.need
        if "narrow" in what:
            extra = [j for j in g.jobs for _ in range(g.need.gpus - 1)]
            jobs += range(len(duration), len(duration) + len(extra))
            duration += [wl.duration[j] for j in extra]
            need = Need((("GPU", 1.0),), 1)
        elif "untie" in what:
            need = Need(tuple(a for a in g.need.amounts if a[0] == "GPU"), g.need.gpus)
        groups.append(CoreGroup(g.gid, need, g.backend, deque(jobs)))
    untie = bool(what & {"untie", "narrow"})
    return Workload(wl.nodes, groups, duration,
                    {k: 0.0 if "noload" in what else v for k, v in wl.load_s.items()},
                    {k: None if untie else v for k, v in wl.accel.items()})


def seeds_arg(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


HEAD = (f"{'GPUs':>5} {'seed':>4} {'bound s':>7} {'oracle':>6} {'online':>6} {'clean':>6} "
        f"{'loads: oracle/bound/online':>26} {'idle':>5} {'H100/A100':>11} {'+loads':>6} "
        f"{'+starts':>7} {'variant':>9} {'cpu s':>5}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--gpus", default="64,1024", help="sizes, comma separated (64,1024)")
    ap.add_argument("--seeds", default="1-10", help="workload seeds: 1-10, 1,3,5")
    ap.add_argument("--relax", default="", help="untie,narrow,noload: see relax()")
    ap.add_argument("--chains", action="store_true",
                    help="each group cut into k_g near-equal chains first (then packed)")
    a = ap.parse_args(argv)
    what = set(filter(None, a.relax.split(",")))
    if what - {"untie", "narrow", "noload"}:
        ap.error(f"--relax {a.relax}: one or more of untie, narrow, noload")
    variants = tuple("eq" + v for v in VARIANTS) if a.chains else VARIANTS
    print("makespan / bound: oracle (this plan), online (the core in llem.scheduler.sim, "
          "crash_p 0.002 as benchmarks.scale), clean (the core, no crash); loads: the "
          "plan's workers, the bound's sum of k_g at the bound, the core's; idle, +loads "
          "(beyond k_g at the plan's makespan), +starts: shares of the plan's GPU time\n")
    print(HEAD)
    for gpus in [int(x) for x in a.gpus.split(",")]:
        rows = []
        for seed in seeds_arg(a.seeds):
            wl = relax(workload(gpus, seed), what)
            bound = wl.bound()[0]
            t0 = time.process_time()
            made, plan, variant = oracle(wl, variants)
            cpu = time.process_time() - t0
            on = simulate(relax(workload(gpus, seed), what), crash_p=0.002, seed=seed)
            clean = simulate(relax(workload(gpus, seed), what))
            w = where(wl, plan, made)
            rows.append((made / bound, on.makespan_s / bound, clean.makespan_s / bound))
            loads = f"{len(plan)}/{sum(bound_loads(wl, bound).values())}/{on.loads}"
            print(f"{gpus:>5} {seed:>4} {bound:>7.0f} {made / bound:>6.3f} "
                  f"{on.makespan_s / bound:>6.3f} {clean.makespan_s / bound:>6.3f} "
                  f"{loads:>26} {w['idle']:>5.1%} {w.get('idle H100', 0):>5.1%}/"
                  f"{w.get('idle A100', 0):>5.1%} {w['load']:>6.1%} {w['start']:>7.2%} "
                  f"{variant:>9} {cpu:>5.1f}", flush=True)
        means = [sum(r[i] for r in rows) / len(rows) for i in range(3)]
        print(f"{gpus:>5} {'mean':>4} {'':>7} {means[0]:>6.3f} {means[1]:>6.3f} "
              f"{means[2]:>6.3f}  (worst oracle {max(r[0] for r in rows):.3f})")


if __name__ == "__main__":
    main()
