"""llem's metrics in the Ray dashboard (ray.util.metrics): jobs, workers, energy, tokens/s.

Ray is used here and in driver.py/worker.py/submit.py/cluster_info.py only (ruff TID251).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llem.store.run_row import RunRow


class Metrics:
    """llem's counters and gauges (ray.util.metrics), tagged by campaign.

    They appear with a ray_ prefix on each node's metrics export port and, with Prometheus
    and Grafana set up (`ray metrics launch-prometheus`), in the dashboard's Metrics tab.
    """

    def __init__(self, campaign: str) -> None:
        from ray.util.metrics import Counter, Gauge

        self.tags = {"campaign": campaign}
        keys = ("campaign",)
        self.done = Counter("llem_jobs_done", "jobs stored with status ok", tag_keys=keys)
        self.failed = Counter("llem_jobs_failed", "jobs stored with status failed",
                              tag_keys=keys)
        self.pending = Gauge("llem_jobs_pending", "jobs not yet stored", tag_keys=keys)
        self.workers = Gauge("llem_workers", "worker actors alive", tag_keys=keys)
        self.loads = Counter("llem_model_loads", "model loads", tag_keys=keys)
        self.energy = Counter("llem_energy_joules", "measured energy of stored jobs (J)",
                              tag_keys=("campaign", "backend"))
        self.tps = Gauge("llem_tokens_per_second", "output tokens/s of the last job",
                         tag_keys=("campaign", "backend", "model"))

    def result(self, run: RunRow) -> None:
        if run.status == "ok":
            self.done.inc(1.0, self.tags)
            if run.energy_j:
                self.energy.inc(float(run.energy_j), {**self.tags, "backend": str(run.backend)})
            if run.tokens_per_s is not None:
                self.tps.set(float(run.tokens_per_s),
                             {**self.tags, "backend": str(run.backend), "model": str(run.model)})
        else:
            self.failed.inc(1.0, self.tags)

    def state(self, pending: int, workers: int) -> None:
        self.pending.set(float(pending), self.tags)
        self.workers.set(float(workers), self.tags)

    def loaded(self, n: int) -> None:
        if n > 0:
            self.loads.inc(float(n), self.tags)
