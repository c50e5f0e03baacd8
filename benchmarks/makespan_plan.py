"""How much of benchmarks.makespan_oracle's makespan needs each job's exact time.

A plan is built (benchmarks.makespan_oracle.oracle) from estimates, not from the true job
times, and then executed (`execute`) in an event simulation with the true times. Each
planned worker keeps its place in the order of its GPUs and starts as soon as the workers
before it there have ended (a process is reused where the one idle on exactly its GPUs has
the same backend and need, else START_S is paid). Repair, online, from the estimates only:
a GPU with no planned worker left, once idle, takes unstarted jobs from the worker (running,
or planned and not started) whose estimated end is latest among those it could run (its
group's width free on this node, its type), from the tail of that worker's chain while the
taker would still end first (taker: now + START_S if a new process + the group's load +
the jobs' estimates; the same group's worker that ends now just goes on, no load). And
(`pool`) a chain that ends goes on, whatever is planned after it on its GPUs, with jobs of
its own group (no load) from the tail of the group's chain whose GPUs are estimated to end
their planned work last, while its own GPUs would still end first. Jobs are never split.
The executed workers are checked by makespan_oracle.validate against the true times
(every job once, width on one node, type ties, no overlap, loads paid).

Per seed (llem.scheduler.sim.workload, no node loss):
  exact   the oracle planned with the true times (makespan_oracle)
  online  the core (llem.scheduler.sim.simulate, crash_p 0.002 as benchmarks.scale); clean:
          no crash
  mean    planned with each group's mean job time (the mean of its true times: its true job
          count, load, width and type tie), executed with the true times; mean0: without
          `pool` (a chain's end taking jobs from its own group's latest chain)
  cycle 2 the campaign run twice: the plan of "mean" (the first cycle's measured means)
          executed on a second cycle's times, a fresh draw: each job again uniform within
          +-40% of its group's generating mean (replayed from workload's random stream),
          noise seed 1000 + seed; beside it that draw's exact oracle and the core on it
  job     the exact plan of the first cycle executed on the same jobs' times within
          +-jitter (a repeat of one configuration runs about as long as before)
Each a makespan / the bound (Workload.bound) of the times it was executed with.

Seeds 1-10, mean (max), 64 / 1,024 GPUs: exact 1.014 / 1.010; the core 1.091 / 1.111
(clean 1.088 / 1.105); mean 1.047 (1.061) / 1.066 (1.082), mean0 1.050 / 1.073; cycle2
1.069 (1.082) / 1.093 (1.122), the core on that draw 1.094 / 1.105; job (+-5%) 1.024
(1.029) / 1.027 (1.034). At 1,024 GPUs, seeds 1-5, job by jitter: 0 1.010, 0.05 1.029,
0.1 1.047, 0.2 1.070, 0.4 1.084.

    python -m benchmarks.makespan_plan                    # 64 and 1,024 GPUs, seeds 1-10
    python -m benchmarks.makespan_plan --gpus 1024 --seeds 1-3 --jitter 0.1
"""

from __future__ import annotations

import argparse
import heapq
import random
from collections import deque
from dataclasses import dataclass, field

from benchmarks.makespan_oracle import Worker, key, node_type, oracle, seeds_arg, validate
from llem.scheduler.core import START_S, CoreGroup
from llem.scheduler.sim import Workload, simulate, workload

EPS = 1e-6
Lane = tuple[int, int]  # (node, GPU)


def with_durations(wl: Workload, duration: list[float]) -> Workload:
    """wl with other job times (and fresh job queues: simulate consumes them)."""
    return Workload(wl.nodes, [CoreGroup(g.gid, g.need, g.backend, deque(g.jobs))
                               for g in wl.groups], duration, dict(wl.load_s), dict(wl.accel))


def means(wl: Workload) -> Workload:
    """wl with every job lasting its group's mean job time."""
    out = list(wl.duration)
    for g in wl.groups:
        m = sum(wl.duration[j] for j in g.jobs) / len(g.jobs)
        for j in g.jobs:
            out[j] = m
    return with_durations(wl, out)


def redraw(gpus: int, seed: int, noise: int, jobs_per_gpu: float = 30.0) -> Workload:
    """workload(gpus, seed) with every job's time drawn again (random.Random(noise)) around
    its group's generating mean, as workload draws it (uniform 0.6-1.4 of the mean, within
    15-300 s). The means are recovered by replaying workload's random stream (checked: the
    replay must give workload's own times)."""
    wl = workload(gpus, seed, jobs_per_gpu)
    rng = random.Random(seed)
    h = max(1, round(0.75 * gpus / 8))
    a = max(0, (gpus - 8 * h) // 4)
    drawn: list[float] = []
    group_mean: list[float] = []
    jobs_gpus = 0.0
    while jobs_gpus < jobs_per_gpu * gpus:
        width = rng.choices([1, 2, 4, 8], [70, 15, 10, 5])[0]
        if width != 8:
            rng.choices(["H100", "A100", None], [2, 1 if a else 0, 7])
        n = max(1, min(int(rng.paretovariate(1.3) * 6), 2000))
        mean = rng.uniform(15, 300)
        drawn += [min(300.0, max(15.0, mean * rng.uniform(0.6, 1.4))) for _ in range(n)]
        rng.choice(["vllm", "transformers"])
        rng.uniform(10, 120)
        group_mean.append(mean)
        jobs_gpus += n * width * mean / 100.0
    if drawn != wl.duration:
        raise RuntimeError("llem.scheduler.sim.workload draws otherwise now: update redraw")
    fresh = random.Random(noise)
    out = list(wl.duration)
    for g in wl.groups:
        for j in g.jobs:
            out[j] = min(300.0, max(15.0, group_mean[g.gid] * fresh.uniform(0.6, 1.4)))
    return with_durations(wl, out)


def jitter(wl: Workload, share: float, noise: int) -> Workload:
    """wl with every job's time times uniform(1 - share, 1 + share)."""
    rng = random.Random(noise)
    return with_durations(wl, [d * rng.uniform(1 - share, 1 + share) for d in wl.duration])


@dataclass(eq=False)
class Run:
    node: int
    gpus: tuple[int, ...]
    gid: int
    queue: deque[int]  # jobs not started, in order
    fresh: bool
    pos: tuple[int, ...] = ()  # its index in each of its GPUs' planned order (planned runs)
    start: float = -1.0  # -1: not started
    end: float = -1.0  # -1: not ended
    job: int = -1  # the job it runs
    job_start: float = 0.0
    done: list[int] = field(default_factory=list)


def execute(true: Workload, plan: list[Worker], est: list[float],
            pooled: bool = True) -> tuple[float, list[Worker], int]:
    """plan run with the true times and repaired from the estimates est (job -> seconds):
    the validated makespan, the workers as executed, and how many times jobs were taken
    over (pooled: also by a chain's end from its own group, see pool)."""
    groups = {g.gid: g for g in true.groups}
    kind = [node_type(r) for _, r in true.nodes]
    ngpu = [int(r["GPU"]) for _, r in true.nodes]
    lanes: dict[Lane, list[Run]] = {(n, x): [] for n in range(len(ngpu)) for x in range(ngpu[n])}
    runs: list[Run] = []
    for w in sorted(plan, key=lambda w: w.start):
        r = Run(w.node, w.gpus, w.gid, deque(w.jobs), w.fresh,
                tuple(len(lanes[(w.node, x)]) for x in w.gpus))
        for x in w.gpus:
            lanes[(w.node, x)].append(r)
        runs.append(r)
    head = dict.fromkeys(lanes, 0)
    busy: dict[Lane, Run | None] = dict.fromkeys(lanes)
    last: dict[Lane, Run | None] = dict.fromkeys(lanes)
    open_ = dict.fromkeys(r for r in runs if r.queue)  # runs with jobs not started, in order
    events: list[tuple[float, int, Run]] = []
    seq = [0, 0]  # events pushed, chains taken over

    def overhead(gid: int, fresh: bool) -> float:
        return (START_S if fresh else 0.0) + true.load_s[gid]

    def next_job(r: Run, t: float) -> None:
        r.job, r.job_start = r.queue.popleft(), t
        if r.queue:
            open_[r] = None
        else:
            open_.pop(r, None)
        seq[0] += 1
        heapq.heappush(events, (t + true.duration[r.job], seq[0], r))

    def reusable(node: int, gpus: tuple[int, ...], gid: int) -> bool:
        p = last[(node, gpus[0])]
        return (p is not None and p.end >= 0 and p.gpus == gpus
                and all(last[(node, x)] is p for x in gpus)
                and key(groups[p.gid]) == key(groups[gid]))

    def begin(r: Run, t: float, fresh: bool) -> None:
        r.start, r.fresh = t, fresh
        for x in r.gpus:
            busy[(r.node, x)] = last[(r.node, x)] = r
        next_job(r, t + overhead(r.gid, fresh))

    def ends(r: Run, t: float, memo: dict[int, float]) -> float:
        """r's estimated end (from est, at time t)."""
        if id(r) in memo:
            return memo[id(r)]
        rest = sum(est[j] for j in r.queue)
        if r.end >= 0:
            out = r.end
        elif r.start >= 0:
            out = max(t, r.job_start + est[r.job]) + rest
        else:  # planned, not started: after the runs before it on each of its GPUs
            at = t
            for x, i in zip(r.gpus, r.pos, strict=True):
                lane = (r.node, x)
                if i <= head[lane] - 1:
                    continue  # passed over there (emptied)
                before = lanes[lane][i - 1] if i - 1 >= head[lane] else busy[lane]
                if before is not None:
                    at = max(at, ends(before, t, memo))
            out = at + (overhead(r.gid, r.fresh) + rest if r.queue else 0.0)
        memo[id(r)] = out
        return out

    def take(t: float, node: int, free: list[int], ended: Run | None) -> bool:
        """One chain taken over onto the free GPUs of node; False where none gains."""
        memo: dict[int, float] = {}
        best: tuple[float, Run, tuple[int, ...], bool, bool] | None = None
        for v in open_:
            w, tie = groups[v.gid].need.gpus, true.accel[v.gid]
            if w > len(free) or (tie and tie != kind[node]):
                continue
            if (ended is not None and ended.gid == v.gid and ended.end == t
                    and set(ended.gpus) <= set(free)
                    and all(last[(node, x)] is ended for x in ended.gpus)):
                gpus, fresh, go_on = ended.gpus, False, True
            else:
                blocks = [b for b in (tuple(range(o, o + w)) for o in range(0, ngpu[node], w))
                          if set(b) <= set(free)] or [tuple(free[:w])]
                gpus = next((b for b in blocks if reusable(node, b, v.gid)), blocks[0])
                fresh, go_on = not reusable(node, gpus, v.gid), False
            late = ends(v, t, memo)
            mine = t + (0.0 if go_on else overhead(v.gid, fresh))
            if mine + est[v.queue[-1]] < late - EPS and (best is None or late > best[0]):
                best = (late, v, gpus, fresh, go_on)
        if best is None:
            return False
        late, v, gpus, fresh, go_on = best
        mine = t + (0.0 if go_on else overhead(v.gid, fresh))
        taken: deque[int] = deque()
        while v.queue and mine + est[v.queue[-1]] < late - EPS:
            taken.appendleft(v.queue.pop())
            mine += est[taken[0]]
            late -= est[taken[0]]
        if not v.queue:
            open_.pop(v, None)
        seq[1] += 1
        if go_on and ended is not None:
            ended.end, ended.queue = -1.0, taken
            for x in ended.gpus:
                busy[(node, x)] = ended
            next_job(ended, t)
        else:
            r = Run(node, gpus, v.gid, taken, fresh)
            runs.append(r)
            begin(r, t, fresh)
        return True

    def lane_end(lane: Lane, t: float, memo: dict[int, float]) -> float:
        return max([t] + [ends(r, t, memo) for r in (lanes[lane][-1:] + [busy[lane]]) if r])

    def pool(r: Run, t: float) -> bool:
        """r, whose chain ends now, goes on with jobs of its own group (no load) taken from
        the tail of the group's chain whose GPUs are estimated to end their planned work
        last, while r's GPUs (its planned successors delayed) still end first."""
        memo: dict[int, float] = {}
        mine = max(lane_end((r.node, x), t, memo) for x in r.gpus)
        best: tuple[float, Run] | None = None
        for v in open_:
            if v.gid == r.gid and v is not r:
                late = max(lane_end((v.node, x), t, memo) for x in v.gpus)
                if mine + est[v.queue[-1]] < late - EPS and (best is None or late > best[0]):
                    best = (late, v)
        if best is None:
            return False
        late, v = best
        while v.queue and mine + est[v.queue[-1]] < late - EPS:
            r.queue.appendleft(v.queue.pop())
            mine += est[r.queue[0]]
            late -= est[r.queue[0]]
        if not v.queue:
            open_.pop(v, None)
        seq[1] += 1
        r.end = -1.0
        next_job(r, t)
        return True

    def dispatch(t: float, node: int, ended: Run | None) -> bool:
        """Start what is due on node, then take chains over onto its GPUs with nothing
        planned left; whether any GPU stays idle with nothing planned."""
        moved = True
        while moved:
            moved = False
            for x in range(ngpu[node]):
                lane = (node, x)
                if busy[lane] is not None or head[lane] >= len(lanes[lane]):
                    continue
                r = lanes[lane][head[lane]]
                if not r.queue:  # emptied by others: passed over
                    head[lane] += 1
                    moved = True
                elif all(busy[(node, y)] is None and head[(node, y)] < len(lanes[(node, y)])
                         and lanes[(node, y)][head[(node, y)]] is r for y in r.gpus):
                    for y in r.gpus:
                        head[(node, y)] += 1
                    begin(r, t, not reusable(node, r.gpus, r.gid))
                    moved = True
        while True:
            free = [x for x in range(ngpu[node]) if busy[(node, x)] is None
                    and head[(node, x)] >= len(lanes[(node, x)])]
            if not free or not take(t, node, free, ended):
                return bool(free)

    idle = {n for n in range(len(ngpu)) if dispatch(0.0, n, None)}
    while events:
        t, _, r = heapq.heappop(events)
        r.done.append(r.job)
        if r.queue:
            next_job(r, t)
            continue
        r.end = t
        if pooled and pool(r, t):
            continue
        for x in r.gpus:
            busy[(r.node, x)] = None
        idle.discard(r.node)
        if dispatch(t, r.node, r):
            idle.add(r.node)
        for n in list(idle):  # estimates overrun: what gained nothing before may gain now
            if n != r.node and not dispatch(t, n, None):
                idle.discard(n)
    done = [Worker(r.node, r.gpus, r.start, r.gid, tuple(r.done), r.fresh)
            for r in runs if r.done]
    return validate(true, done), done, seq[1]


def row(gpus: int, seed: int, share: float) -> dict[str, float]:
    """One seed's makespans / bounds (see the module's docstring), and the plans' counts."""
    wl = workload(gpus, seed)
    bound = wl.bound()[0]
    out: dict[str, float] = {"bound": bound}
    made, exact, _ = oracle(wl)
    out["exact"] = made / bound
    out["online"] = simulate(workload(gpus, seed), crash_p=0.002, seed=seed).makespan_s / bound
    out["clean"] = simulate(workload(gpus, seed)).makespan_s / bound
    plan_wl = means(wl)
    planned, plan, _ = oracle(plan_wl)
    out["planned"] = planned / plan_wl.bound()[0]
    out["mean0"] = execute(wl, plan, plan_wl.duration, pooled=False)[0] / bound
    made, _, out["taken"] = execute(wl, plan, plan_wl.duration)
    out["mean"] = made / bound
    two = redraw(gpus, seed, 1000 + seed)
    bound2 = two.bound()[0]
    made, _, out["taken2"] = execute(two, plan, plan_wl.duration)
    out["cycle2"] = made / bound2
    out["exact2"] = oracle(two)[0] / bound2
    out["clean2"] = simulate(with_durations(two, two.duration)).makespan_s / bound2
    rep = jitter(wl, share, 2000 + seed)
    made, _, out["takenj"] = execute(rep, exact, wl.duration)
    out["job"] = made / rep.bound()[0]
    return out


COLS = ("exact", "online", "clean", "planned", "mean0", "mean", "taken", "cycle2", "taken2",
        "exact2", "clean2", "job", "takenj")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--gpus", default="64,1024", help="sizes, comma separated (64,1024)")
    ap.add_argument("--seeds", default="1-10", help="workload seeds: 1-10, 1,3,5")
    ap.add_argument("--jitter", type=float, default=0.05,
                    help="job: a repeat's time within +-this share of the first (0.05)")
    a = ap.parse_args(argv)
    if not 0 <= a.jitter < 1:
        ap.error(f"--jitter {a.jitter}: a share from 0 to below 1, such as 0.05")
    try:
        sizes, seeds = [int(x) for x in a.gpus.split(",")], seeds_arg(a.seeds)
    except ValueError:
        ap.error(f"--gpus {a.gpus} --seeds {a.seeds}: whole numbers, such as 64,1024 and 1-10")
    print("makespan / bound of the times executed: exact (oracle, true times), online (the "
          "core, crash_p 0.002), clean (the core, no crash), planned (the mean plan on the "
          "means), mean (that plan executed; mean0: repaired only by GPUs with nothing "
          "planned left, no pooling within a group), cycle2 (that plan on a second cycle's fresh "
          "times), exact2 / clean2 (oracle / core on those), job (exact plan on the same "
          f"jobs' times +-{a.jitter:.0%}); taken*: chains taken over in the repair\n")
    print(f"{'GPUs':>5} {'seed':>4} {'bound':>6} " + " ".join(f"{c:>7}" for c in COLS))
    for gpus in sizes:
        rows = []
        for seed in seeds:
            r = row(gpus, seed, a.jitter)
            rows.append(r)
            print(f"{gpus:>5} {seed:>4} {r['bound']:>6.0f} "
                  + " ".join(f"{r[c]:>7.0f}" if c.startswith("taken") else f"{r[c]:>7.3f}"
                             for c in COLS), flush=True)
        print(f"{gpus:>5} {'mean':>4} {'':>6} " + " ".join(
            f"{sum(r[c] for r in rows) / len(rows):>7.{0 if c.startswith('taken') else 3}f}"
            for c in COLS))
        print(f"{gpus:>5} {'max':>4} {'':>6} " + " ".join(
            f"{max(r[c] for r in rows):>7.{0 if c.startswith('taken') else 3}f}"
            for c in COLS))


if __name__ == "__main__":
    main()
