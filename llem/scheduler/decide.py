"""Scheduling decisions, pure: no Ray, no clock, no sleeping, no state of their own.

Which waiting group starts next (longest first, one an idle worker can take before a fresh
process), when a running group gets one more worker (split_gain: by time, not by a job
count; remaining: the group that would finish last first), which wide group nodes are
drained for (starved), and whether a job whose worker died is retried.
llem.scheduler.core.SchedulerCore asks them for a whole campaign driven by events (the
simulator's), llem.scheduler.driver on its live groups; placement is
llem.scheduler.placement, the drains llem.scheduler.drains.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import islice
from typing import Literal, Protocol

from llem.scheduler.placement import Books, Need

UNTIMED_JOBS = 2  # see split_gain
START_S = 2.0  # what a new worker costs before its model load (process, imports), roughly
SCAN = 16  # running groups of one need looked at for a split, the one to finish last first
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
    """Seconds until g would finish with the workers it has (inf with none): the jobs left
    per worker, plus the one each worker runs at the end (split_gain > 0 on a need's
    groups ranked by this: llem.scheduler.core). A free GPU goes to the group that would
    finish last, so that the groups end together, and the one job added puts groups of
    long jobs ahead of groups of short ones: the tail is left to the short jobs."""
    if not g.workers:
        return math.inf
    return (g.left() / g.workers + 1) * (PRIOR_S if g.job_s is None else g.job_s)


def lpt_key(g: Runnable) -> float:
    """Longest first: a group's GPU-jobs (wider jobs weigh more; a CPU job weighs 1)."""
    return g.left() * max(1, g.need.gpus)


def next_start(pending: Sequence[Runnable], running: Mapping[Need, Iterable[Runnable]],
               books: Books, reusable: Callable[[Runnable], int], min_jobs: int = 2,
               scarcity: Callable[[Need], float] | None = None,
               avoid: Callable[[Need], frozenset[str]] | None = None,
               order: Callable[[Runnable], tuple[int, ...]] | None = None
               ) -> tuple[Runnable, bool] | None:
    """The group to start one worker for now, and whether it is a split, or None.

    Waiting groups go first (each must run once anyway, and a group's job time is known only
    once one of its jobs has run): of those that fit a node now, one an idle worker can
    serve (no process start), then the longest, its length weighed by scarcity (all GPUs
    over the GPUs of the nodes that can run it). Once none waits, a split for the running
    group that would finish last (remaining) among those a split shortens (split_gain > 0),
    of the needs that fit a node now and share no kind of node with a waiting group
    (running: need -> its running groups, ranked by remaining: SCAN of each are looked at,
    so a decision costs the same with 10 groups running or 10,000; nothing is scanned while
    every GPU is busy). pending: the longest waiting group of each need is enough (see
    SchedulerCore). avoid: the accelerator types a need must keep off now (their GPUs are
    kept for the groups tied to them: llem.scheduler.shares), none by default. reusable:
    whether an idle worker can serve g in its own process (the driver says 2 when one holds
    g's model: no load either). order: a preference among waiting groups before all that
    (the driver's: the earlier cycle first when groups interleave, then the order's slot)."""
    off = avoid or (lambda need: frozenset())
    fit = [g for g in pending if books.can_place(g.need, off(g.need))]
    if fit:
        weigh = scarcity or (lambda need: 1.0)
        first = order or (lambda g: ())
        return max(fit, key=lambda g: (*first(g), reusable(g), lpt_key(g) * weigh(g.need))), \
            False
    best, key = None, 0.0
    for need, groups in running.items():
        # a split must not keep a waiting (wider) group off a node it could use
        if any(books.shares_kind(need, w.need, off(w.need)) for w in pending) or \
                not books.can_place(need, off(need)):
            continue
        for g in islice(_ranked(groups, min_jobs), SCAN):
            r = remaining(g)
            if r + START_S <= key:
                break  # ranked by remaining: a reused process counts START_S more at most
            reuse = reusable(g)
            if split_gain(g, 0.0 if reuse else START_S, min_jobs) > 0 and \
                    r + (START_S if reuse else 0.0) > key:
                best, key = g, r + (START_S if reuse else 0.0)
    return (best, True) if best is not None else None


def starved(pending: Sequence[Runnable], running: Mapping[Need, Iterable[Runnable]],
            books: Books, min_jobs: int = 2,
            avoid: Callable[[Need], frozenset[str]] | None = None) -> list[Runnable]:
    """The wide groups (2+ GPUs a worker) that no node has room for now and that should
    have the next one, at most one for any kind of node: the longest waiting ones first,
    then the running ones that would finish last of those a split shortens (running ranked
    as in next_start, the first of each need looked at). The core keeps (drains) nodes for
    them: free GPUs scattered one or two a node would otherwise never add up to a wide
    worker's."""
    off = avoid or (lambda need: frozenset())
    wide = sorted((g for g in pending if g.need.gpus > 1 and
                   not books.can_place(g.need, off(g.need))), key=lpt_key, reverse=True)
    tops = []
    for need, groups in running.items():
        if need.gpus > 1 and not books.can_place(need, off(need)):
            g = next(iter(islice(_ranked(groups, min_jobs), 1)), None)
            if g is not None and split_gain(g, START_S, min_jobs) > 0:
                tops.append(g)
    out: list[Runnable] = []
    for g in wide + sorted(tops, key=remaining, reverse=True):
        if not any(books.shares_kind(g.need, o.need, off(o.need)) for o in out):
            out.append(g)
    return out


def _ranked(groups: Iterable[Runnable], min_jobs: int) -> Iterable[Runnable]:
    """running's groups of one need, the one to finish last first: the core's come ranked
    (llem.scheduler.ranked); the driver's few, a list, are ranked here."""
    if isinstance(groups, (list, tuple)):
        return sorted((g for g in groups if split_gain(g, START_S, min_jobs) > 0),
                      key=remaining, reverse=True)
    return groups


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
