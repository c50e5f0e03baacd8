"""The Ray driver: groups -> worker actors on chosen nodes -> results streamed into the store.

Scheduling, in order: every load group is checked against the cluster's nodes first (a job
no node can ever run is a UserError before any actor starts); groups are started largest
first (longest-processing-time order keeps the makespan near ideal), each on a node the
driver picks (llem.scheduler.placement), one call in flight per actor; when no waiting group
fits, a running group gets one more worker on an idle GPU set (same load key, a second model
load) when its work left per worker outlasts a start and model load, if its need shares no
kind of node with a waiting group (llem.scheduler.decide.next_start). Two more decisions are
the simulated core's (llem.scheduler.core), the same code: untied workers keep off the GPUs
of an accelerator type that the groups tied to it need (llem.scheduler.shares), and a wide
group that no node has room for gets nodes kept for it, which workers of other groups leave
between two jobs, never mid-job (llem.scheduler.drains). A worker whose group is done serves
the next group of the same backend and resources in its own process (llem.scheduler.pool). A
worker process that dies is restarted by Ray (max_restarts) and the job it was running is
retried up to scheduling.retries times, then stored as failed with the cause; the jobs of a
lost node go back to the queue (llem.scheduler.faults). With measurement.calibrate, the
reference job runs on every GPU set just before the first worker starts
(llem.scheduler.calibration). Results are written by a background thread; jobs stored with
status ok are skipped (a re-run resumes); Ctrl-C kills the actors.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ray

from llem.config.grid import Group, groups, planned
from llem.config.job import Job, canonical
from llem.config.loaded import Loaded
from llem.envs.environments import preflight
from llem.errors import UserError
from llem.harness.result import failed_result
from llem.prompts.dataset import load_prompts
from llem.scheduler.calibration import CalibratedWriter, calibrate
from llem.scheduler.cluster import alive_nodes
from llem.scheduler.core import Runnable, next_start
from llem.scheduler.drains import Drains
from llem.scheduler.faults import Faults
from llem.scheduler.metrics import Metrics
from llem.scheduler.neighbours import Neighbours
from llem.scheduler.placement import Books, Need, infeasible_message, never_placed
from llem.scheduler.pool import Pool
from llem.scheduler.shares import Shares, alive_gpus
from llem.scheduler.state import (
    MATERIALISE,
    GroupRun,
    Planned,
    Summary,
    Worker,
    WorkerDied,
    group_size,
)
from llem.store.run_row import Result, RunRow
from llem.store.store import Store

NODE_CHECK_S = 2.0  # how often the driver looks for added or lost nodes
AHEAD = 16  # groups materialised ahead while looking for one that fits (backfill)
COUNT_JOBS = 20_000  # jobs read one by one to count what an interrupted campaign left


class Driver(Faults):
    """Runs one campaign to completion; on_result is called with each result's runs row (a
    RunRow) as it is handed to the store's writer thread (llem.store.writer)."""

    def __init__(self, loaded: Loaded, store: Store,
                 on_result: Callable[[RunRow, Summary], None] | None = None,
                 runtime_envs: dict[str, dict[str, Any]] | None = None,
                 on_event: Callable[[str], None] | None = None) -> None:
        self.loaded = loaded
        # each backend's Ray runtime_env; a missing or broken one is a UserError here
        self.runtime_envs = runtime_envs if runtime_envs is not None else preflight(
            loaded.campaign.backends, loaded.campaign.environments)
        self.campaign = loaded.campaign.name
        self.sched = loaded.campaign.scheduling
        self.store = store
        self.on_result = on_result or (lambda r, s: None)
        self.on_event = on_event or (lambda m: None)  # what happens now, in a few words
        self.summary = Summary()
        self.base_dir = loaded.path.resolve().parent if loaded.path else Path.cwd()
        self._prompts: dict[str, Any] = {}
        self._attempts: dict[tuple[str, int], int] = {}
        self._neighbours = Neighbours()
        self._pending: deque[GroupRun] = deque()  # groups waiting for a node
        self.books = Books()
        self.metrics: Metrics | None = None
        self._calibrated = False
        self.shares = Shares()
        self._runs: dict[int, GroupRun] = {}  # id(group) -> its run, for the shares
        # need -> how many groups of it are still in the queue (not materialised yet)
        self._queued: dict[Need, Planned] = {}
        self.pool = Pool(self.campaign, self.sched, self.runtime_envs, self.books,
                         self.summary, None, self.on_event)
        self.drains = Drains(self.books, self._busy)

    def prompts_ref(self, job: Job) -> Any:
        key = canonical(job.point.dataset.model_dump(mode="json"))
        if key not in self._prompts:
            self._prompts[key] = ray.put(load_prompts(job.point.dataset, self.base_dir))
        return self._prompts[key]

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> Summary:
        t0, self.started = time.perf_counter(), time.time()  # campaign_elapsed_s counts from it
        self.books = Books.of(alive_nodes(), self.sched)
        self.drains = Drains(self.books, self._busy)
        self.shares.gpus = alive_gpus(self.books)
        queue = deque(self._plan())
        for g in queue:  # every group's work counts in the shares before it starts
            need = Need.of(g.first.resources)
            self.shares.touch(id(g), Planned(need, g.size_hint))
            self._queued.setdefault(need, Planned(need, 0)).size += 1
        done = self.store.done(self.campaign)
        gc.freeze()  # the plan and the stored keys live all campaign: no collection scans them
        self.metrics = Metrics(self.campaign)
        pool = self.pool = Pool(self.campaign, self.sched, self.runtime_envs, self.books,
                                self.summary, self.metrics, self.on_event, self.shares)
        self.writer = CalibratedWriter(self.store)  # calibrated before the first worker
        checked = time.monotonic()
        finished = False
        try:
            while True:
                self.writer.check()  # a write error (disk full) stops the campaign
                if time.monotonic() - checked > NODE_CHECK_S:
                    self.books.sync(alive_nodes())
                    self.shares.gpus = alive_gpus(self.books)
                    checked = time.monotonic()
                self._start(queue, done)
                pool.retire_idle()  # idle workers no group took: their GPUs are free
                self._unrunnable()
                for w in list(pool.workers):
                    pool.feed(w, self.prompts_ref)
                    self._check_start(w)
                    self._check_timeout(w)
                if not (pool.calls or self._pending or queue or
                        any(w.run.more() for w in pool.workers)):
                    break
                refs = list(pool.calls)
                if refs:
                    ray.wait(refs, num_returns=1, timeout=1.0)
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                    # every ready worker gets its next job before any result is stored:
                    # workers that finished together do not wait on each other's results
                    got = [self._collect(ref) for ref in ready if ref in pool.calls]
                    for w, result in [g for g in got if g is not None]:
                        self._store(w, result, placed=True)
                else:
                    time.sleep(0.2)  # groups wait for a node (lost nodes, autoscaling)
                for w in [w for w in pool.workers if not w.inflight and not w.run.more()]:
                    pool.finished(w)
                self.metrics.state(len(pool.calls) + sum(p.left() for p in self._pending)
                                   + sum(w.run.left() for w in pool.workers), len(pool.workers))
            finished = True
        except KeyboardInterrupt:
            self.summary.interrupted = True
        finally:
            gc.unfreeze()
            # what was in flight or left in started groups, read before the workers go
            left = None if finished else (len(pool.calls), {
                id(g): g for g in [w.run for w in pool.workers] + list(self._pending)})
            pool.close()
            if left is not None:
                self._count_not_run(*left, queue, done)
            self.writer.close()  # every result written before the session row
            for run in self.writer.lost():
                self.summary.count(run, -1)
                self.summary.not_run += 1
            self.summary.elapsed_s = time.perf_counter() - t0
            self._write_session()
        self.writer.check()
        return self.summary

    def _count_not_run(self, inflight: int, runs: dict[int, GroupRun], queue: deque[Group],
                       done: set[tuple[str, int]]) -> None:
        """The campaign stopped early: count the jobs it did not run (in flight, left in
        started or waiting groups, every job of the groups never started), so that total =
        ok + failed + skipped + not_run. Groups never started are read job by job (to skip
        what the store holds) up to COUNT_JOBS jobs; past that, by their size."""
        s = self.summary
        s.not_run += inflight  # stopped before their result came back
        for g in runs.values():
            left = g.left()
            s.not_run += left
            s.total += left - len(g.back)  # a lazy group's jobs not pulled yet
        budget = COUNT_JOBS
        for group in queue:
            if group.size_hint <= min(MATERIALISE, budget):
                n = sum(1 for _ in self._pending_jobs(group, done))
                budget -= group.size_hint
            else:
                n = group_size(group, self.loaded.campaign)
                s.total += n
            s.not_run += n

    def _plan(self) -> list[Group]:
        """All groups in their planned order; refuse any that no node can ever run."""
        plan = planned(groups(self.loaded), lambda g: group_size(g, self.loaded.campaign))
        for g in plan:
            if why := never_placed(Need.of(g.first.resources), self.books.views()):
                raise UserError(infeasible_message(g.first.backend, g.first.model, why,
                                                   self.books))
        return plan

    def _start(self, queue: deque[Group], done: set[tuple[str, int]]) -> None:
        """Start workers while a node has room: waiting groups, largest first (backfilling a
        later one when the first does not fit); else one more worker for the running group
        that would finish last, of a need that shares no kind of node with a waiting group
        (llem.scheduler.decide.next_start, as in the simulated core)."""
        self._touch()
        off = self.shares.off  # the types a need keeps off now (llem.scheduler.shares)
        while True:
            fit = [g for g in self._pending if self.books.can_place(g.need, off(g.need))]
            while not fit and queue and len(self._pending) < AHEAD:
                g = queue.popleft()
                gr = GroupRun.of(g, Need.of(g.first.resources), self._pending_jobs(g, done))
                if (q := self._queued.get(gr.need)) and q.size > 1:
                    q.size -= 1
                else:
                    self._queued.pop(gr.need, None)
                self._runs[id(g)] = gr
                self.shares.touch(id(g), gr)
                if gr.more():  # a group whose jobs are all stored starts no worker
                    self.prompts_ref(gr.back[0])  # bad prompt files fail before any actor
                    self._pending.append(gr)
                    if self.books.can_place(gr.need, off(gr.need)):
                        fit.append(gr)
            waiting: list[Runnable] = []
            if not fit and (queue or self._pending):
                # a split only for needs that share no kind of node with any waiting group,
                # materialised or still queued (next_start); a queued one that fits waits
                # for its turn (AHEAD), as before
                waiting = [*self._pending, *self._queued.values()]
                if any(self.books.can_place(q.need, off(q.need))
                       for q in self._queued.values()):
                    self._drain(self._running())
                    return
            # read only when no waiting group fits
            running = {} if fit else self._running()
            # every group must run once anyway: waiting ones go before any split (the
            # earlier cycle first, then one an idle worker can serve, then the longest)
            pick = next_start(fit or waiting, running, self.books, self._reusable,
                              self.sched.split_min_jobs, self.books.scarcity, off,
                              order=self._order)
            if pick is None or not isinstance(pick[0], GroupRun) or (waiting and not pick[1]):
                self._drain(running)
                return
            target = pick[0]
            if not pick[1]:
                self._pending.remove(target)
            if not self._calibrated:  # measurement.calibrate: only when a job will run
                self._calibrated, self.writer.calibration = True, calibrate(self)
            idle = self.pool.reusable(target)
            node = self.books.place(target.need, idle.node_id if idle else None,
                                    off(target.need))
            assert node is not None
            self.pool.start(target, node)

    def _running(self) -> dict[Need, list[GroupRun]]:
        """The groups with a worker, per need."""
        running: dict[Need, list[GroupRun]] = {}
        for r in {id(w.run): w.run for w in self.pool.workers}.values():
            running.setdefault(r.need, []).append(r)
        return running

    def _touch(self) -> None:
        """The started groups' work left (jobs sent, timed, given back), for the shares;
        a group with neither jobs nor workers left is done with."""
        for key, gr in list(self._runs.items()):
            self.shares.touch(key, gr)
            if not gr.workers and not gr.left():
                del self._runs[key]

    def _drain(self, running: dict[Need, list[GroupRun]]) -> None:
        """No worker starts now: nodes are kept for the wide groups that no node has room
        for (llem.scheduler.drains, as in the simulated core)."""
        self.drains.keep(list(self._pending), running, self.sched.split_min_jobs,
                         self.shares.off)

    def _busy(self, node: str) -> list[GroupRun]:
        """The groups of node's busy workers, one entry per worker (for the drains)."""
        return [w.run for w in self.pool.workers if w.node_id == node]

    def _evict(self, w: Worker) -> None:
        """w leaves its group between two jobs: its node is kept for a wider group
        (Drains.evict); the group waits for a node again if no worker serves it."""
        self.on_event(f"worker {w.index} leaves node {w.node_id[:8]} (kept for a wider job)")
        self.pool.finished(w)
        if not w.run.workers and w.run.more() and w.run not in self._pending:
            self._pending.appendleft(w.run)

    def _order(self, g: Runnable) -> tuple[int, ...]:
        return g.group.wave_order if isinstance(g, GroupRun) else ()

    def _reusable(self, g: Runnable) -> int:
        """2: an idle worker holds g's model, 1: one can load it in its process, else 0.
        Holding counts while other workers run: alone, the plan's order within a cycle is
        the timeline (timeline_index), one load per group."""
        return self.pool.holds(g, bool(self.pool.workers)) if isinstance(g, GroupRun) else 0

    def _unrunnable(self) -> None:
        """Waiting groups that no alive node can run any more (their nodes were lost)."""
        for gr in [g for g in self._pending if not self.books.feasible(g.need)]:
            self._pending.remove(gr)
            why = (f"no alive node can run this job any more ({gr.need.describe()}): "
                   f"{self.books.describe()}")
            self.summary.errors.append(why[:300])
            for job in gr.stop():
                self._store(None, failed_result(job, WorkerDied(why), why, {}, time.time()))

    def _pending_jobs(self, group: Group, done: set[tuple[str, int]]) -> Iterator[Job]:
        for job in group.jobs():
            self.summary.total += 1
            if job.key in done:
                self.summary.skipped += 1
                continue
            yield job

    # -- results and faults --------------------------------------------------------------

    def _collect(self, ref: Any) -> tuple[Worker, Result] | None:
        """A finished call: its worker's next job is sent; the result is returned to store
        (None when the worker died: handled here)."""
        w = self.pool.calls[ref]
        try:
            result: Result = ray.get(ref)
        except ray.exceptions.RayError as exc:
            self._worker_fault(w, exc)
            return None
        self._remove_call(w, ref)
        self._place(w, result.run)  # its neighbours: before its worker's next call
        if not w.inflight and self.drains.evict(w.node_id, w.run):
            self._evict(w)  # between two jobs, never mid-job
        else:
            self.pool.feed(w, self.prompts_ref)
        return w, result

    def _remove_call(self, w: Worker, ref: Any) -> Job:
        self.pool.calls.pop(ref, None)
        for i, (r, job) in enumerate(w.inflight):
            if r == ref:
                del w.inflight[i]
                return job
        raise KeyError(ref)

    def _place(self, w: Worker, run: RunRow) -> None:
        """Where the job ran and who ran beside it (the other workers' calls in flight)."""
        if not run.node_id:
            run.node_id = w.node_id
        if run.worker_pid is not None:  # it ran in the worker: who ran beside it
            self._neighbours.attribute(w, self.pool.workers, run)

    def _store(self, w: Worker | None, result: Result,
               attempts: int | None = None, placed: bool = False) -> None:
        run = result.run
        run.attempts = self._attempts.get(run.key, 0) + 1 if attempts is None else attempts
        run.exclusive_node = self.sched.exclusive_node
        run.campaign_elapsed_s = run.started_at and run.started_at - self.started  # drift
        run.cpu_jobs_per_node = self.sched.cpu_jobs_per_node
        if w is not None and not placed:
            self._place(w, run)
        self.writer.put(result)
        self.summary.count(run)
        if self.metrics:
            self.metrics.result(run)
        self.on_result(run, self.summary)

    def _write_session(self) -> None:
        self.store.write_session(self.campaign, {
            **self.summary.columns(), "exclusive_node": self.sched.exclusive_node})


