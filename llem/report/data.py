"""What a report shows, gathered once from the store; the HTML and PNG renderers share it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llem.errors import UserError
from llem.report.campaign import Campaign
from llem.report.fmt import sort_key
from llem.report.metrics import HEADLINE
from llem.report.params import Param, Points

X, Y = "tokens_per_s", "energy_per_token_j"  # the Pareto plane: more tokens/s, fewer J/token


@dataclass
class Timeline:
    """One job's sampled power (per GPU) and its idle baseline."""

    job_id: str
    cycle: int
    label: str
    points: dict[str, list[tuple[float, float]]]  # GPU (uuid) -> [(t_s, power_w)]
    idle_w_per_gpu: float | None


# What the report gathers per configuration: the headline, then what an arrival rate or a
# server's rate levels add; the results table shows the ones with data (J/token normalised
# across GPUs only in a calibrated campaign).
METRICS = (*HEADLINE, "itl_p50_s", "idle_power_w", "energy_per_token_j_normalised")
RATE_METRICS = ("arrival_rate_achieved", "e2e_latency_p99_s")
SERVER_METRICS = ("arrival_rate_achieved", "goodput_requests_per_s", "slo_attainment",
                  "ttft_p99_s", "itl_p99_s", "energy_per_good_request_j")


@dataclass
class ReportData:
    campaign: str
    store: str
    counts: dict[str, Any]
    points: Points
    environment: dict[str, str]
    fixed: dict[str, str]
    metrics: list[str]
    configs: list[dict[str, Any]]  # one per job_id: label, stats (<metric>_mean ...), pareto
    timeline: Timeline | None
    server: bool = False  # rate levels of a server (mode = 'server')
    notes: list[str] = field(default_factory=list)
    include_invalid: bool = False  # energy figures over invalid rows too (--include-invalid)

    @property
    def invalid(self) -> int:
        """Ok runs whose energy is invalid (left out of the energy figures unless
        include_invalid)."""
        return sum(c.get("invalid_n") or 0 for c in self.configs)

    @property
    def params(self) -> list[Param]:
        return self.points.params

    @property
    def swept(self) -> list[str]:
        """The varying parameters' names."""
        return [p.name for p in self.params]

    @property
    def has_energy(self) -> bool:
        return self.has(Y)

    def has(self, metric: str) -> bool:
        """Whether any configuration has a mean of `metric`."""
        return any(c.get(f"{metric}_mean") is not None for c in self.configs)

    def label(self, row: dict[str, Any]) -> str:
        return str(row.get("label") or row["job_id"])

    def value(self, row: dict[str, Any], prm: Param) -> Any:
        return self.points.value(row["job_id"], prm.path)


def pareto(rows: list[dict[str, Any]]) -> set[int]:
    """Indices of rows not dominated: no other row has more tokens/s at no more J/token."""
    pts = [(i, r[f"{X}_mean"], r[f"{Y}_mean"]) for i, r in enumerate(rows)
           if r.get(f"{X}_mean") is not None and r.get(f"{Y}_mean") is not None
           and not r.get("saturated_n")]
    return {i for i, x, y in pts
            if not any(x2 >= x and y2 <= y and (x2 > x or y2 < y) for _, x2, y2 in pts)}


def gather(camp: Campaign, job: str | None = None) -> ReportData:
    """Everything the report needs from one campaign: one row per configuration (job_id),
    labelled by what varies between the configurations' points."""
    server = camp.server_mode
    points = camp.points
    wanted = (*METRICS, *RATE_METRICS, *(SERVER_METRICS if server else ()))
    metrics = [m for m in dict.fromkeys(wanted) if m in camp.columns]
    configs = camp.group_stats(["job_id"], metrics)
    arrivals = any(c.get("arrival_rate_achieved_mean") is not None for c in configs)
    metrics = [m for m in metrics if any(c[f"{m}_mean"] is not None for c in configs)
               and (arrivals or m not in RATE_METRICS)]
    failed = {r["job_id"]: r["n"] for r in camp.sql(
        "SELECT job_id, count(*) AS n FROM runs WHERE campaign = ? AND status <> 'ok' "
        "GROUP BY job_id")}
    for c in configs:
        c["label"] = points.label(c["job_id"]) or " ".join(
            str(points.value(c["job_id"], k) or "") for k in ("backend", "model")).strip() \
            or c["job_id"]
        c["params"] = {p.name: points.value(c["job_id"], p.path) for p in points.params}
        c["failed"] = failed.get(c["job_id"], 0)
        c["saturated_n"] = c.get("saturated_n") or 0
    order = sorted(configs, key=lambda c: [sort_key(points.value(c["job_id"], p.path))
                                           for p in points.params])
    front = pareto(order)
    for i, c in enumerate(order):
        c["pareto"] = i in front
    data = ReportData(camp.name, camp.store.uri, camp.counts(), points, camp.environment(),
                      camp.fixed_config(), metrics, order, None, server,
                      include_invalid=camp.include_invalid)
    data.timeline = timeline(camp, data, job)
    if not data.has_energy:
        reason = data.environment.get("energy_unavailable", "no energy readings in the store")
        data.notes.append(f"Energy was not measured in this campaign ({reason}): the energy "
                          "plots are left out; throughput and latency are shown.")
    if data.invalid:
        data.notes.append(invalid_note(data))
    if data.timeline is None:
        data.notes.append("No power samples in this campaign (they come from NVML on GPU "
                          "jobs): the power timeline is left out.")
    saturated = sum(1 for c in configs if c["saturated_n"])
    if saturated:
        data.notes.append(f"{saturated} of {len(configs)} rate levels were stopped as "
                          "over-saturated in some cycle (the server could not keep up): they "
                          "are marked with a cross and left off the lines and frontiers.")
    failed_jobs = sum(failed.values())
    if failed_jobs:
        data.notes.append(f"{failed_jobs} runs failed (`llem export {camp.name} --format "
                          "jsonl` has their errors); figures are over the ok runs.")
    return data


def invalid_note(data: ReportData) -> str:
    """What the energy figures do with the runs whose energy is invalid."""
    n = data.invalid
    configs = sum(1 for c in data.configs if c.get("invalid_n"))
    where = f"{n} ok runs (in {configs} of {len(data.configs)} configurations)"
    if data.include_invalid:
        return (f"{where} have invalid energy (energy_valid false, or a neighbour on their "
                "GPUs) and are included in the energy figures (--include-invalid): those "
                "figures are not all trustworthy.")
    return (f"{where} have invalid energy (energy_valid false, or a neighbour on their GPUs): "
            "they are left out of the energy and power figures (the 'energy invalid' column "
            "counts them; throughput and latency keep them). `llem report --include-invalid` "
            "includes them; `energy_invalid_reasons` says why.")


def timeline(camp: Campaign, data: ReportData, job: str | None) -> Timeline | None:
    """The power samples of `job` (a job_id or a unique prefix, optionally JOB:CYCLE), or of
    the job with the most samples."""
    cycle = None
    if job and ":" in job:
        job, _, c = job.partition(":")
        if not c.isdigit():
            raise UserError(f"--job {job}:{c}: the cycle after ':' must be a whole number "
                            "(0 is the first cycle)")
        if not job:  # ':1' alone: the cycle of which job?
            raise UserError(f"--job :{c}: give the job_id (or a unique prefix) before ':', "
                            f"e.g. --job 68cb81ad:{c}")
        cycle = int(c)
    if job:
        ids = [r["job_id"] for r in camp.sql("SELECT DISTINCT job_id FROM runs WHERE "
                                             "campaign = ? AND starts_with(job_id, ?)", [job])]
        if len(ids) != 1:
            raise UserError(f"--job {job} matches {len(ids)} jobs of campaign '{camp.name}': "
                            "give a job_id (or a unique prefix) from `llem export`")
        job = ids[0]
    where = " AND job_id = ?" if job else ""
    where += " AND cycle = ?" if cycle is not None else ""
    params: list[Any] = [p for p in (job, cycle) if p is not None]
    best = camp.sql(f"SELECT job_id, cycle, count(*) AS n FROM samples WHERE campaign = ? "
                    f"AND power_w IS NOT NULL{where} GROUP BY ALL ORDER BY n DESC, job_id, "
                    "cycle LIMIT 1", params)
    if not best:
        if job and cycle is not None:
            cycles = [r["cycle"] for r in camp.sql(
                "SELECT DISTINCT cycle FROM runs WHERE campaign = ? AND job_id = ? ORDER BY "
                "cycle", [job])]
            if cycle not in cycles:
                raise UserError(f"--job {job}:{cycle}: the job has no cycle {cycle} (its cycles: "
                                f"{', '.join(map(str, cycles)) or 'none'}; 0 is the first)")
        if job:
            raise UserError(f"--job {job}: no power samples stored for it")
        return None
    jid, cyc = best[0]["job_id"], best[0]["cycle"]
    rows = camp.sql("SELECT gpu_uuid, t_s, power_w FROM samples WHERE campaign = ? AND "
                    "job_id = ? AND cycle = ? AND power_w IS NOT NULL ORDER BY gpu_uuid, t_s",
                    [jid, cyc])
    points: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        points.setdefault(r["gpu_uuid"] or "gpu", []).append((r["t_s"], r["power_w"]))
    run = camp.sql("SELECT idle_power_w, gpu_count FROM runs WHERE campaign = ? AND "
                   "job_id = ? AND cycle = ?", [jid, cyc])
    idle = run[0]["idle_power_w"] if run else None
    n = (run[0]["gpu_count"] if run else None) or len(points) or 1
    conf = next((c for c in data.configs if c["job_id"] == jid), {"job_id": jid})
    label = f"{data.label(conf)} (cycle {cyc})"
    return Timeline(jid, cyc, label, points, idle / n if idle is not None else None)
