"""The Ray driver's answers to workers that fail: a worker that does not start, a call that
hangs past its job's timeout, a worker process or node that dies. Kept apart from the
driver's loop (llem.scheduler.driver), which mixes this in; what each fault becomes
(requeue, retry, fail) is llem.scheduler.decide.fault, as in the simulator's core."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import ray

from llem.config.job import Job
from llem.config.models import Scheduling
from llem.harness.result import failed_result
from llem.scheduler.cluster import is_alive
from llem.scheduler.decide import fault
from llem.scheduler.placement import Books
from llem.scheduler.pool import Pool
from llem.scheduler.shares import Shares, alive_gpus
from llem.scheduler.state import GroupRun, JobTimeout, Summary, Worker, WorkerDied, first_line
from llem.store.run_row import Result


class Faults:
    """Mixed into llem.scheduler.driver.Driver, which provides these attributes and the
    two methods below."""

    pool: Pool
    sched: Scheduling
    summary: Summary
    books: Books
    shares: Shares
    _attempts: dict[tuple[str, int], int]
    _pending: deque[GroupRun]

    def _store(self, w: Worker | None, result: Result,
               attempts: int | None = None, placed: bool = False) -> None:
        raise NotImplementedError

    def _remove_call(self, w: Worker, ref: Any) -> Job:
        raise NotImplementedError

    def _check_start(self, w: Worker) -> None:
        """Watch a starting or restarting worker: a restarting actor refuses calls, so it
        is probed (ready) until it answers; one that cannot start fails its jobs clearly."""
        if w.started:
            return
        ready, _ = ray.wait([w.ready_ref], timeout=0)
        if ready:
            try:
                w.pid = ray.get(w.ready_ref).get("pid")
            except ray.exceptions.ActorUnavailableError:  # still restarting: ask again
                if time.monotonic() - w.created <= self.sched.start_timeout_s:
                    time.sleep(0.05)
                    w.ready_ref = w.actor.ready.remote()
                    return
            except ray.exceptions.RayError as exc:
                if not w.inflight:  # no call will report it: give the worker up here
                    self._abandon(w, f"the worker could not start: {first_line(exc)}")
                    return
            w.started, w.restarting = True, False
            w.since = max(w.since, time.time())  # its first call runs from about now
        elif time.monotonic() - w.created > self.sched.start_timeout_s:
            self._abandon(w, f"the worker did not start within {self.sched.start_timeout_s:g} "
                          "s (its runtime environment or Python may lack ray or llem)")

    def _check_timeout(self, w: Worker) -> None:
        """A call running past its job's measurement.job_timeout_s is a hang: the worker is
        killed (its GPUs freed), the job stored as failed, and the worker's queued jobs go
        back to the group for a fresh worker. A hang is not retried: it would hang again."""
        if not w.started or not w.inflight or w not in self.pool.workers:
            return
        ref, job = w.inflight[0]
        limit = job.point.measurement.job_timeout_s
        if time.time() - w.since <= limit:
            return
        why = (f"timed out after {limit:g} s (measurement.job_timeout_s): the backend hung, "
               "or the job needs a longer timeout")
        self._remove_call(w, ref)
        w.run.give_back([j for _, j in w.inflight])
        w.hung = True
        self._drop(w, release=True)
        self._store(w, failed_result(job, JobTimeout(why), why, {}, time.time()))

    def _worker_fault(self, w: Worker, exc: Exception) -> None:
        """The actor's process or node died: store what finished, retry or fail the rest."""
        refs = [r for r, _ in w.inflight]
        ray.wait(refs, num_returns=len(refs), timeout=10.0)
        culprit: Job | None = None
        cause = exc
        again: list[Job] = []
        for ref, job in list(w.inflight):
            self._remove_call(w, ref)
            try:
                self._store(w, ray.get(ref, timeout=0))
            except ray.exceptions.RayError as e:
                if culprit is None:
                    culprit, cause = job, e
                else:
                    again.append(job)
        node_lost = isinstance(cause, ray.exceptions.ActorUnschedulableError) or \
            not is_alive(w.node_id)
        if fault(0, self.sched.retries, node_lost) == "requeue":  # as the simulator's core
            self.books.lose(w.node_id)
            self.shares.gpus = alive_gpus(self.books)
            jobs = ([culprit] if culprit else []) + again
            self.summary.rescheduled += len(jobs)
            self.summary.errors.append(f"node {w.node_id[:12]} lost: {len(jobs)} jobs "
                                       "rescheduled")
            w.run.give_back(jobs)
            self._drop(w, release=False)
            return
        w.restarts += 1
        if culprit is not None:
            key = culprit.key
            self._attempts[key] = self._attempts.get(key, 0) + 1
            n = self._attempts[key]
            if fault(n, self.sched.retries, node_lost=False) == "fail":
                msg = f"worker process died {n} times running this job: {first_line(cause)}"
                self._store(w, failed_result(culprit, WorkerDied(msg), str(cause), {},
                                             time.time()), attempts=n)
            else:
                self.summary.retried += 1
                again.insert(0, culprit)
        w.run.give_back(again)
        if w.restarts > self.sched.max_restarts or \
                isinstance(cause, ray.exceptions.ActorDiedError):
            self._abandon(w, f"worker died {w.restarts} times (scheduling.max_restarts "
                          f"{self.sched.max_restarts}): {first_line(cause)}")
        else:  # Ray restarts the process; probe it before sending calls again
            w.started, w.restarting, w.created = False, True, time.monotonic()
            w.since = time.time()  # the resent head call starts after the restart
            w.ready_ref = w.actor.ready.remote()

    def _abandon(self, w: Worker, why: str) -> None:
        """Give the worker up; its group's jobs become failed rows unless others serve it."""
        jobs = [job for _, job in w.inflight]
        if w.run.workers == 1:  # the group's last worker: nobody will run the rest
            jobs += w.run.stop()
        else:
            w.run.give_back(jobs)
            jobs = []
        self._drop(w, release=True)
        self.summary.errors.append(why[:300])
        for job in jobs:
            self._store(w, failed_result(job, WorkerDied(why), why, {}, time.time()))

    def _drop(self, w: Worker, release: bool) -> None:
        """Kill a failed worker; a group left with jobs and no worker waits for a node."""
        self.pool.retire(w, release)
        if w.run.workers == 0 and w.run not in self._pending and w.run.more():
            self._pending.appendleft(w.run)
