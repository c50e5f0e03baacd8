"""Where a worker may run: the driver's books of the cluster's nodes (pure logic, no Ray).

The driver places every worker actor on a named node itself (Ray's node affinity, hard), so
it knows at every moment which measured jobs share a node: that is what makes exclusive
mode (one measured job per node) and the neighbour columns of each result possible. Ray
still enforces the resources (GPUs, CPUs, custom), so a booking mistake can only make an
actor wait, never share a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llem.config.models import Resources

EPS = 1e-9
ACCEL_PREFIX = "accelerator_type:"


@dataclass(frozen=True)
class Need:
    """What one worker reserves: Ray resource name -> amount (GPU, CPU, custom, accelerator)."""

    amounts: tuple[tuple[str, float], ...]
    gpus: int

    @classmethod
    def of(cls, r: Resources) -> Need:
        amounts: dict[str, float] = {}
        if r.gpus_per_job:
            amounts["GPU"] = float(r.gpus_per_job)
        elif r.cpus_per_job:
            amounts["CPU"] = float(r.cpus_per_job)  # a GPU worker reserves GPUs, not a core
        if r.accelerator_type:
            amounts[ACCEL_PREFIX + r.accelerator_type] = 0.001  # what Ray itself asks for
        amounts.update({k: float(v) for k, v in r.custom.items() if v})
        return cls(tuple(sorted(amounts.items())), r.gpus_per_job)

    def describe(self) -> str:
        names = {"GPU": "GPUs", "CPU": "CPUs"}
        return ", ".join(k if k.startswith(ACCEL_PREFIX) else
                         f"{v:g} {names[k]}" if k in names else f"{k} {v:g}"
                         for k, v in self.amounts)


@dataclass
class Node:
    node_id: str
    total: dict[str, float]
    free: dict[str, float]
    workers: int = 0  # measured workers placed here (exclusive mode allows one)
    alive: bool = True

    def fits(self, need: Need, exclusive: bool) -> bool:
        if not self.alive or (exclusive and self.workers):
            return False
        return all(self.free.get(k, 0.0) + EPS >= v for k, v in need.amounts)


def can_ever_fit(total: dict[str, float], need: Need) -> bool:
    return all(total.get(k, 0.0) + EPS >= v for k, v in need.amounts)


@dataclass
class Books:
    """Free resources per alive node, as the driver has handed them out."""

    nodes: dict[str, Node] = field(default_factory=dict)
    exclusive: bool = False

    @classmethod
    def from_nodes(cls, nodes: list[dict[str, Any]], exclusive: bool = False) -> Books:
        """nodes: [{"node_id", "resources"}] of the alive nodes (llem.scheduler.cluster)."""
        books = cls(exclusive=exclusive)
        for n in nodes:
            books.add(n["node_id"], n["resources"])
        return books

    def add(self, node_id: str, resources: dict[str, float]) -> None:
        if node_id not in self.nodes:
            self.nodes[node_id] = Node(node_id, dict(resources), dict(resources))

    def sync(self, alive: list[dict[str, Any]]) -> None:
        """Nodes that joined become usable; nodes that left are booked as lost."""
        ids = {n["node_id"] for n in alive}
        for n in alive:
            self.add(n["node_id"], n["resources"])
        for node_id in self.nodes:
            if node_id not in ids:
                self.lose(node_id)

    def feasible(self, need: Need) -> bool:
        return any(n.alive and can_ever_fit(n.total, need) for n in self.nodes.values())

    def can_place(self, need: Need) -> bool:
        return any(n.fits(need, self.exclusive) for n in self.nodes.values())

    def place(self, need: Need, prefer: str | None = None) -> str | None:
        """A node with room now: prefer (where an idle worker can be reused) if it fits,
        else the tightest fit, so large GPU sets stay free for TP jobs."""
        fits = [n for n in self.nodes.values() if n.fits(need, self.exclusive)]
        if not fits:
            return None
        best = min(fits, key=lambda n: (n.node_id != prefer, n.free.get("GPU", 0.0),
                                        n.free.get("CPU", 0.0), n.node_id))
        for k, v in need.amounts:
            best.free[k] = best.free.get(k, 0.0) - v
        best.workers += 1
        return best.node_id

    def release(self, node_id: str, need: Need) -> None:
        n = self.nodes.get(node_id)
        if n is None:
            return
        for k, v in need.amounts:
            n.free[k] = min(n.total.get(k, 0.0), n.free.get(k, 0.0) + v)
        n.workers = max(0, n.workers - 1)

    def lose(self, node_id: str) -> None:
        if node_id in self.nodes:
            self.nodes[node_id].alive = False

    def describe(self) -> str:
        """The alive nodes' resources in one line, for an error message."""
        parts = []
        for n in self.nodes.values():
            if n.alive:
                shown = {k: v for k, v in n.total.items()
                         if k in ("GPU", "CPU") or k.startswith(ACCEL_PREFIX)
                         or not (k.startswith("node:") or k in ("memory",
                                                                  "object_store_memory"))}
                parts.append(" ".join(f"{k}={v:g}" for k, v in sorted(shown.items())))
        return "; ".join(parts) or "no alive nodes"


def infeasible_message(backend: str, model: str, need: Need, books: Books) -> str:
    gpus = sum(n.total.get("GPU", 0.0) for n in books.nodes.values() if n.alive)
    return (f"jobs of {backend}/{model} need {need.describe()} on one node, and no node has "
            f"that (the cluster has {gpus:g} GPUs; nodes: {books.describe()}): check "
            "resources.gpus_per_job, accelerator_type and custom")
