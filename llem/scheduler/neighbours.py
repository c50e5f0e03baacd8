"""Who ran beside a job: the other measured jobs on its node during its window.

Packed jobs share a node's CPUs, memory bandwidth, power supply and air, so each result
records its neighbours (job_id-c<cycle> and their GPUs) and interference is visible in the
data. The driver knows every job it placed on a node: the finished ones with their windows
(kept here), and the ones still running with the time they probably started (the end of the
previous call on the same actor, since an actor runs its calls one at a time).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llem.store.run_row import RunRow

KEEP = 512  # finished windows remembered per node (far more than overlap any one job)


class Neighbours:
    def __init__(self) -> None:
        self._done: dict[str, deque[tuple[str, str, float, float]]] = {}

    def record(self, node: str, name: str, gpus: str, started: float | None,
               finished: float | None, running: list[tuple[str, str, float]]
               ) -> tuple[list[str], list[str]]:
        """This job's neighbours (names, GPUs aligned); then remember its own window.

        running: (name, gpus, since) of the jobs in progress on the node's other workers.
        """
        if started is None or finished is None:
            return [], []
        past = self._done.setdefault(node, deque(maxlen=KEEP))
        hits: dict[str, str] = {}
        for other, og, s, f in past:
            if s < finished and f > started and other != name:
                hits[other] = og
        for other, og, since in running:
            if since < finished and other != name:
                hits.setdefault(other, og)
        past.append((name, gpus, started, finished))
        names = sorted(hits)
        return names, [hits[n] for n in names]

    def attribute(self, w: Any, workers: list[Any], run: RunRow) -> None:
        """Fill run's neighbour columns; w is the Worker (llem.scheduler.state) that ran it."""
        if run.finished_at:  # the next call on this actor starts about now
            w.since = max(w.since, float(run.finished_at))
        if run.gpu_uuids or run.visible_devices:
            w.gpus = ",".join(run.gpu_uuids or []) or str(run.visible_devices)
        running = [(f"{o.inflight[0][1].job_id}-c{o.inflight[0][1].cycle}", o.gpus, o.since)
                   for o in workers if o is not w and o.node_id == w.node_id and o.inflight]
        run.neighbor_jobs, run.neighbor_gpus = self.record(
            w.node_id, f"{run.job_id}-c{run.cycle}", w.gpus, run.started_at, run.finished_at,
            running)
        w.run.observe(run)
        pid, loads = run.worker_pid, run.model_loads
        if pid is not None and loads is not None:
            w.loads[int(pid)] = max(w.loads.get(int(pid), 0), int(loads))
