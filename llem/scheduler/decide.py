"""Scheduling decisions, pure: no Ray, no clock, no sleeping, no state of their own.

Which waiting group starts next (longest first, one an idle worker can take before a fresh
process), when a running group gets one more worker (split_gain: by time, not by a job
count; remaining: the group that would finish last first), and whether a job whose worker
died is retried. llem.scheduler.core.SchedulerCore asks them for a whole campaign driven by
events (the simulator's and the Ray driver's), where placement is llem.scheduler.placement.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import islice
from typing import Literal, Protocol

from llem.scheduler.placement import Books, Need

UNTIMED_JOBS = 2  # see split_gain
START_S = 2.0  # what a new worker costs before its model load (process, imports), roughly
SCAN = 16  # running groups of one need looked at for a split, most work left per worker first
PRIOR_S = 60.0  # a job's expected time before any job of its group finished


class Runnable(Protocol):
    """A load group as the decisions see it (GroupRun in the driver, CoreGroup here)."""

    need: Need
    workers: int
    job_s: float | None  # mean duration of its finished jobs (None: none finished yet)
    load_s: float  # its model load, as seen

    def left(self) -> int: ...


def split_gain(g: Runnable, start_s: float, min_jobs: int = 2) -> float:
    """Seconds one more worker would take off g's finish, or 0 when it would not pay.

    g's w workers still need R = left x job_s / w each. One more, ready after c = start_s +
    load_s, finishes the lot at (left x job_s + c) / (w + 1): sooner exactly when R > c,
    whatever the job count. So a GPU never idles while a group it can serve has more work
    left per worker than a model load costs. Before any of g's jobs is timed, a free GPU
    takes it once each worker would still get UNTIMED_JOBS jobs (a measured job lasts 15 s
    or more: on a GPU that would idle anyway, the load costs energy, not time)."""
    left = g.left()
    if not g.need.gpus:  # CPU jobs measure the node's shared cores: a split would run two
        return 0.0       # of them side by side, each in the other's window
    if not g.workers or not left or left // (g.workers + 1) < min_jobs:
        return 0.0  # min_jobs (scheduling.split_min_jobs): the smallest piece worth a split
    if g.job_s is None:
        return 1e-3 * left / (g.workers + 1) if left >= UNTIMED_JOBS * (g.workers + 1) \
            else 0.0
    work = left * g.job_s
    cost = start_s + g.load_s
    per = work / g.workers
    if per <= cost:
        return 0.0
    return per - (work + cost) / (g.workers + 1)


def remaining(g: Runnable) -> float:
    """Seconds of work g's workers still have each (inf with no worker): the group that
    would finish last is the one a free GPU shortens the campaign most by joining."""
    if not g.workers:
        return math.inf
    return g.left() * (PRIOR_S if g.job_s is None else g.job_s) / g.workers


def lpt_key(g: Runnable) -> float:
    """Longest first: a group's GPU-jobs (wider jobs weigh more; a CPU job weighs 1)."""
    return g.left() * max(1, g.need.gpus)


def next_start(pending: Sequence[Runnable], running: Mapping[Need, Iterable[Runnable]],
               books: Books, reusable: Callable[[Runnable], bool], min_jobs: int = 2,
               scarcity: Callable[[Need], float] | None = None
               ) -> tuple[Runnable, bool] | None:
    """The group to start one worker for now, and whether it is a split, or None.

    Waiting groups go first (each must run once anyway): of those that fit a node now, one
    an idle worker can serve (no process start), then the longest, its length weighed by
    scarcity (all GPUs over the GPUs of the nodes that can run it: a group only a quarter of
    the cluster can run is as long, for the campaign, as one four times its size). Once none
    waits, the running group whose split gains the most, among the needs that fit a node now
    and share no kind of node with a waiting group (running: need -> its running groups,
    largest split_gain with a fresh process first: SCAN of each are looked at, so a decision
    costs the same with 10 groups running or 10,000; nothing is scanned while every GPU is
    busy). pending: the longest waiting group of each need is enough (see SchedulerCore)."""
    fit = [g for g in pending if books.can_place(g.need)]
    if fit:
        weigh = scarcity or (lambda need: 1.0)
        return max(fit, key=lambda g: (reusable(g), lpt_key(g) * weigh(g.need))), False
    best, gain = None, 0.0
    for need, groups in running.items():
        # a split must not keep a waiting (wider) group off a node it could use
        if any(books.shares_kind(need, w.need) for w in pending) or \
                not books.can_place(need):
            continue
        if isinstance(groups, (list, tuple)):  # the driver's few: ranked here
            groups = sorted(groups, key=lambda g: split_gain(g, START_S, min_jobs),
                            reverse=True)
        for g in islice(groups, SCAN):
            if split_gain(g, START_S, min_jobs) + START_S <= gain:
                break  # ranked by that gain: a reused process saves at most START_S more
            s = split_gain(g, 0.0 if reusable(g) else START_S, min_jobs)
            if s > gain:
                best, gain = g, s
    return (best, True) if best is not None else None


def retry(attempts: int, retries: int) -> bool:
    """A job whose worker died on it attempts times: run it again?"""
    return attempts <= retries


def fault(attempts: int, retries: int, node_lost: bool) -> Literal["requeue", "retry", "fail"]:
    """What a job whose worker went away while running it becomes, in the driver and the
    simulator alike: requeue when its node was lost (not the job's doing: no attempt is
    counted, it goes back first in its group, for any node that can run it), retry when the
    worker process died on it attempts times and retries allow another, else fail."""
    if node_lost:
        return "requeue"
    return "retry" if retry(attempts, retries) else "fail"
