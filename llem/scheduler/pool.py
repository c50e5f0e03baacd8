"""The campaign's worker actors: started on the node the driver chose, fed one call at a
time, and reused for the next load group instead of a fresh process per group.

A worker process costs 1-3 s to start (Ray worker, imports) before its model loads; a
campaign of many small groups paid that for every group. So a worker whose group is done
waits (idle, its GPUs released in the books) until the driver's next placement: a group of
the same backend (so the same runtime env) and the same resource need, placed on its node,
goes to it. Its next call carries the new load spec, and the actor closes the old model and
loads the new one (llem.harness.runner.JobRunner.switch). Backends that do not free memory on
close (Backend.reloads_in_process False: vLLM, TensorRT-LLM) always get a fresh process, as
does every group with scheduling.reuse_workers off. Idle workers nobody took are killed.
The GPUs each worker takes and frees are counted in the driver's llem.scheduler.shares.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import psutil
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from llem.backends import reloads_in_process
from llem.config.models import Scheduling
from llem.config.modes import served_name
from llem.scheduler.metrics import Metrics
from llem.scheduler.placement import Books
from llem.scheduler.shares import Shares
from llem.scheduler.state import GroupRun, Summary, Worker
from llem.scheduler.worker import call_name, start_worker

SERVER_STOP_S = 60.0  # a server-mode worker's server stop (its process tree) at the end


class Pool:
    """Workers serving groups (workers), idle ones waiting for a next group (idle), and the
    calls in flight (calls: object ref -> worker)."""

    def __init__(self, campaign: str, sched: Scheduling,
                 runtime_envs: dict[str, dict[str, Any]], books: Books, summary: Summary,
                 metrics: Metrics | None,
                 on_event: Callable[[str], None] | None = None,
                 shares: Shares | None = None) -> None:
        self.campaign, self.sched, self.runtime_envs = campaign, sched, runtime_envs
        self.books, self.summary, self.metrics = books, summary, metrics
        self.on_event = on_event or (lambda m: None)
        self.workers: list[Worker] = []
        self.idle: list[Worker] = []
        self.calls: dict[Any, Worker] = {}
        self.index = 0
        self.serving: dict[int, GroupRun] = {}  # worker index -> the group it loaded
        # the GPUs that untied workers hold per accelerator type (llem.scheduler.shares)
        self.shares = Shares() if shares is None else shares

    def reusable(self, gr: GroupRun, node: str | None = None) -> Worker | None:
        """An idle worker that can serve gr in its own process (on node, if given): one that
        holds gr's model already (the same load: gr is a later cycle of its group) first."""
        fits = [w for w in self.idle if node in (None, w.node_id)
                and (n := self.books.nodes.get(w.node_id)) is not None and n.alive
                and w.run.group.first.backend == gr.group.first.backend
                and w.run.need == gr.need]
        return next((w for w in fits if w.run.load == gr.load), fits[0] if fits else None)

    def holds(self, gr: GroupRun, held: bool = True) -> int:
        """2: an idle worker holds gr's model (counted when held); 1: one can load it in
        its own process; 0: none."""
        w = self.reusable(gr)
        return 0 if w is None else 1 + (held and w.run.load == gr.load)

    def start(self, gr: GroupRun, node: str) -> Worker:
        """Serve gr on node (already booked): an idle worker there, else a new actor."""
        w = self.reusable(gr, node)
        if w is not None:
            self.idle.remove(w)
            w.run = gr
            w.since = time.time()
        else:
            where = f" on node {node[:8]}" if len(self.books.nodes) > 1 else ""
            self.on_event(f"starting worker {self.index} ({gr.group.first.backend}){where}")
            strategy = NodeAffinitySchedulingStrategy(node, soft=False)
            actor = start_worker(self.campaign, gr.group, self.index,
                                 self.runtime_envs.get(gr.group.first.backend), strategy,
                                 self.sched.max_restarts)
            w = Worker(gr, actor, node, self.index, actor.ready.remote(), time.monotonic())
            self.index += 1
            self.summary.workers += 1
        gr.workers += 1
        self.shares.hold_at(self.books, node, gr.need, 1)
        self.workers.append(w)
        return w

    def feed(self, w: Worker, prompts_ref: Any) -> None:
        """Send the worker its group's next job.

        One call in flight per actor: when a worker process dies, the call it was running is
        known exactly (with two queued, the reply of a finished call can die with the
        process and the wrong job would be blamed). The driver sends the next call before
        it stores a result, so an actor waits one round trip between jobs, not the write.
        """
        if w.inflight or w.restarting or not w.run.more():
            return
        job = w.run.take()
        if self.serving.get(w.index) is not w.run:  # its first call loads the group's model
            self.serving[w.index] = w.run
            p = job.point
            self.on_event(f"worker {w.index}: loading {p.model} ({p.backend}, {p.dtype})")
        ref = w.actor.run.options(name=call_name(job)).remote(
            job.payload(), prompts_ref(job), w.run.load)
        w.inflight.append((ref, job))
        self.calls[ref] = w

    def finished(self, w: Worker) -> None:
        """w's group has no jobs left for it: keep it idle for a next group, or kill it."""
        if not (self.sched.reuse_workers and w.started and not w.restarting
                and reloads_in_process(w.run.group.first.backend)):
            self.retire(w)
            return
        self._leave(w, release=True)
        self.idle.append(w)

    def retire_idle(self) -> None:
        """Kill the idle workers no group took (their resources are already released)."""
        for w in self.idle:
            self._kill(w)
        self.idle.clear()

    def retire(self, w: Worker, release: bool = True) -> None:
        """Kill a worker, its loads counted; release=False: its node is lost."""
        w.hung = w.hung or bool(w.inflight)  # a call still runs in it (an interrupted run)
        for ref, _ in list(w.inflight):
            self.calls.pop(ref, None)
        w.inflight.clear()
        self._leave(w, release)
        if w in self.idle:
            self.idle.remove(w)
        self._kill(w)

    def close(self) -> None:
        for w in list(self.workers):
            self.retire(w)
        self.retire_idle()

    def _leave(self, w: Worker, release: bool) -> None:
        if w in self.workers:
            self.workers.remove(w)
            if release:
                self.books.release(w.node_id, w.run.need)
            w.run.workers -= 1
            self.shares.hold_at(self.books, w.node_id, w.run.need, -1)

    def _kill(self, w: Worker) -> None:
        n = sum(w.loads.values())
        w.loads.clear()
        self.summary.model_loads += n
        if self.metrics:
            self.metrics.loaded(n)
        if w.run.load.get("mode") == "server" and w.started and \
                not served_name(w.run.group.first.backend):
            # ray.kill is a SIGKILL, which no handler outlives: the worker's server would
            # (its own session). Ask the worker to stop it first; a dead one cannot answer.
            # A backend that sends to a server already running (endpoint) launched none.
            # A close would wait behind a call still running (one call at a time), up to
            # SERVER_STOP_S, and not run at all behind a hung one: SIGTERM the worker then
            with contextlib.suppress(Exception):
                if w.hung and w.pid is not None:
                    self._terminate(w, w.pid)
                else:
                    ray.get(w.actor.close.remote(), timeout=SERVER_STOP_S)
        ray.kill(w.actor)

    def _terminate(self, w: Worker, pid: int) -> None:
        """SIGTERM to w's process, sent on its node, in its runtime env: the worker's
        handler stops the servers it started (llem.harness.server.launch), then it exits."""
        task = ray.remote(num_cpus=0)(terminate).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(w.node_id, soft=False),
            runtime_env=self.runtime_envs.get(w.run.group.first.backend))
        ray.get(task.remote(pid, SERVER_STOP_S), timeout=SERVER_STOP_S + 10)


def terminate(pid: int, wait_s: float) -> bool:
    """SIGTERM pid and wait up to wait_s for it to exit; whether it did."""
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(timeout=wait_s)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True
