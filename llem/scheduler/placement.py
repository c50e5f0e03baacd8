"""Where a worker may run: the driver's books of the cluster's nodes (pure logic, no Ray).

The driver places every worker actor on a named node itself (Ray's node affinity, hard), so
it knows at every moment which measured jobs share a node: that is what makes exclusive
mode (one measured job per node), the cap on CPU-measured jobs per node
(scheduling.cpu_jobs_per_node) and the neighbour columns of each result possible. Ray still
enforces the resources (GPUs, CPUs, custom), so a booking mistake can only make an actor
wait, never share a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llem.config.models import Resources, Scheduling
from llem.models.memory import human

EPS = 1e-9
ACCEL_PREFIX = "accelerator_type:"
RESERVE_TRIES = 16  # nodes Books.reserve looks at, so that it costs the same on 10,000 GPUs


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
    cpu_workers: int = 0  # of which measure the CPU (no GPU): they share its cores and RAPL

    def fits(self, need: Need, exclusive: bool, cpu_jobs: int = 1) -> bool:
        """Room for need now; cpu_jobs: CPU-measured workers one node may run at once."""
        if not self.alive or (exclusive and self.workers):
            return False
        if not need.gpus and self.cpu_workers >= cpu_jobs:
            return False
        return all(self.free.get(k, 0.0) + EPS >= v for k, v in need.amounts)


def can_ever_fit(total: Mapping[str, float], need: Need) -> bool:
    return all(total.get(k, 0.0) + EPS >= v for k, v in need.amounts)


def gpu_sets_of(totals: Mapping[str, Mapping[str, float]], need: Need) -> list[str]:
    """One node id per set of need.gpus GPUs, over the nodes (id -> resource totals) that
    need ever fits: where calibration's reference job runs (llem.scheduler.calibration),
    and what the dry run counts."""
    out: list[str] = []
    for node_id, total in sorted(totals.items()):
        if can_ever_fit(total, need):
            out += [node_id] * int(total.get("GPU", 0) // need.gpus)
    return out


def accelerator(total: Mapping[str, float]) -> str | None:
    """A node's accelerator type (from its resource totals), or None."""
    return next((k[len(ACCEL_PREFIX):] for k in total if k.startswith(ACCEL_PREFIX)), None)


def avoided(total: Mapping[str, float], avoid: frozenset[str]) -> bool:
    return bool(avoid) and accelerator(total) in avoid


@dataclass(frozen=True)
class NodeView:
    """A node as the "can this job ever run" check sees it: Ray's resource totals (GPU,
    CPU, accelerator_type:X, custom) and, where known, each GPU's memory and name."""

    name: str
    total: Mapping[str, float]
    gpu_memory_bytes: tuple[float | None, ...] = ()
    gpu_names: tuple[str, ...] = ()

    def has_accelerator(self, kind: str) -> bool:
        want = kind.lower()
        return any(k.lower() == ACCEL_PREFIX + want for k in self.total) or \
            any(want in name.lower() for name in self.gpu_names)


def never_placed(need: Need, nodes: Iterable[NodeView], memory_bytes: float | None = None,
                 gpu_fraction: float = 1.0) -> str | None:
    """Why no node can ever run a job of need, or None when one can: the one check behind
    both the dry run and the driver. memory_bytes: the job's estimated memory per GPU (the
    dry run knows it; the driver does not), of which a backend may use gpu_fraction."""
    fit = list(nodes)
    accel = next((k[len(ACCEL_PREFIX):] for k, _ in need.amounts
                  if k.startswith(ACCEL_PREFIX)), None)
    if accel:
        fit = [n for n in fit if n.has_accelerator(accel)]
        if not fit:
            return f"needs accelerator_type {accel}; no node has one"
    if need.gpus:
        most = max((n.total.get("GPU", 0.0) for n in fit), default=0.0)
        if most + EPS < need.gpus:
            has = "the cluster has no GPU" if most == 0 else f"the largest node has {most:g}"
            return f"needs {need.gpus} GPU{'' if need.gpus == 1 else 's'} on one node; {has}"
    for key, amount in need.amounts:
        if key in ("GPU",) or key.startswith(ACCEL_PREFIX):
            continue
        most = max((n.total.get(key, 0.0) for n in fit), default=0.0)
        if most + EPS < amount:
            what = "CPUs" if key == "CPU" else f"custom resource {key}"
            return f"needs {amount:g} {what}; the largest node has {most:g}"
    fit = [n for n in fit if all(n.total.get(k, 0.0) + EPS >= v for k, v in need.amounts
                                 if not k.startswith(ACCEL_PREFIX))]
    if not fit:
        return f"needs {need.describe()} on one node; no node has all of them"
    if memory_bytes is None or not need.gpus:
        return None
    for n in fit:
        roomy = [m for m in n.gpu_memory_bytes if m is None or m * gpu_fraction >= memory_bytes]
        unknown = int(n.total.get("GPU", 0.0)) - len(n.gpu_memory_bytes)  # memory not probed
        if len(roomy) + max(unknown, 0) >= need.gpus:
            return None
    biggest = max((m for n in fit for m in n.gpu_memory_bytes if m is not None), default=0.0)
    share = f" ({gpu_fraction:g} of it for this backend)" if gpu_fraction != 1.0 else ""
    return f"needs {human(memory_bytes)} per GPU; the largest GPU has {human(biggest)}{share}"


@dataclass
class Books:
    """Free resources per alive node, as the driver has handed them out.

    GPU needs are answered from an index (node kind, free GPUs) -> nodes, so that placing a
    worker costs the same on 2 nodes as on 1,250: the kinds (distinct resource totals: 8 x
    H100, 4 x A100, ...) times the free-GPU levels are scanned, not the nodes.

    cpu_jobs: how many CPU-measured workers (no GPU) a node runs at once. They share its
    cores and its RAPL package, so by default one: two at once measure each other (on 2
    cores, 511.6 +- 1350.9 tok/s, CV 60%)."""

    nodes: dict[str, Node] = field(default_factory=dict)
    exclusive: bool = False
    cpu_jobs: int = 1
    # (kind, whole free GPUs) -> node ids (an ordered set); node id -> its kind
    _slots: dict[tuple[int, int], dict[str, None]] = field(default_factory=dict, repr=False)
    _kinds: dict[tuple[tuple[str, float], ...], int] = field(default_factory=dict, repr=False)
    _kind_of: dict[str, int] = field(default_factory=dict, repr=False)
    # node -> the need it is kept for while it drains (see reserve; llem.scheduler.drains)
    held: dict[str, Need] = field(default_factory=dict)
    _scarce: dict[Need, float] = field(default_factory=dict, repr=False)  # see scarcity

    @classmethod
    def from_nodes(cls, nodes: list[dict[str, Any]], exclusive: bool = False,
                   cpu_jobs: int = 1) -> Books:
        """nodes: [{"node_id", "resources"}] of the alive nodes (llem.scheduler.cluster)."""
        books = cls(exclusive=exclusive, cpu_jobs=cpu_jobs)
        for n in nodes:
            books.add(n["node_id"], n["resources"])
        return books

    @classmethod
    def of(cls, nodes: list[dict[str, Any]], sched: Scheduling) -> Books:
        """The books a campaign's driver keeps: its exclusive_node and cpu_jobs_per_node."""
        return cls.from_nodes(nodes, sched.exclusive_node, sched.cpu_jobs_per_node)

    def add(self, node_id: str, resources: dict[str, float]) -> None:
        if node_id not in self.nodes:
            self._scarce.clear()
            self.nodes[node_id] = Node(node_id, dict(resources), dict(resources))
            kind = tuple(sorted((k, float(v)) for k, v in resources.items()
                                if not k.startswith("node:")))
            self._kind_of[node_id] = self._kinds.setdefault(kind, len(self._kinds))
            self._index(node_id, True)

    def _index(self, node_id: str, on: bool) -> None:
        key = self._kind_of[node_id], int(self.nodes[node_id].free.get("GPU", 0.0) + EPS)
        if on:
            self._slots.setdefault(key, {})[node_id] = None
        elif key in self._slots:
            self._slots[key].pop(node_id, None)
            if not self._slots[key]:
                del self._slots[key]

    def sync(self, alive: list[dict[str, Any]]) -> None:
        """Nodes that joined become usable; nodes that left are booked as lost."""
        ids = {n["node_id"] for n in alive}
        for n in alive:
            self.add(n["node_id"], n["resources"])
        for node_id in self.nodes:
            if node_id not in ids:
                self.lose(node_id)

    def views(self) -> list[NodeView]:
        """The alive nodes, for never_placed."""
        return [NodeView(n.node_id, n.total) for n in self.nodes.values() if n.alive]

    def scarcity(self, need: Need) -> float:
        """All alive GPUs over those on alive nodes that can ever run need (1.0 when none
        can): the weight decide.next_start gives a waiting group's length, so that a group
        only a few nodes can run starts before groups any node can run. Cached per need
        until a node joins or is lost."""
        if need not in self._scarce:
            alive = [n.total for n in self.nodes.values() if n.alive]
            can = sum(float(t.get("GPU", 0.0)) for t in alive if can_ever_fit(t, need))
            every = sum(float(t.get("GPU", 0.0)) for t in alive)
            self._scarce[need] = every / can if can > 0 else 1.0
        return self._scarce[need]

    def feasible(self, need: Need) -> bool:
        return never_placed(need, self.views()) is None

    def shares_kind(self, a: Need, b: Need, avoid: frozenset[str] = frozenset()) -> bool:
        """Whether some kind of alive node could ever run both a and b (b kept off the
        accelerator types in avoid)."""
        return any(can_ever_fit(dict(kind), a) and can_ever_fit(dict(kind), b)
                   and not avoided(dict(kind), avoid) for kind, _ in self._kind_slots())

    def _kind_slots(self) -> list[tuple[tuple[tuple[str, float], ...], int]]:
        used = {k for k, _ in self._slots}
        return [(kind, i) for kind, i in self._kinds.items() if i in used]

    def can_place(self, need: Need, avoid: frozenset[str] = frozenset()) -> bool:
        return self._find(need, None, avoid) is not None

    def _find(self, need: Need, prefer: str | None,
              avoid: frozenset[str] = frozenset()) -> Node | None:
        """A node where need fits now: prefer if it fits, else the tightest fit (fewest free
        GPUs), so that large GPU sets stay free for TP jobs; none of an accelerator type in
        avoid (kept for the groups tied to it: llem.scheduler.core)."""
        held = self.held
        if prefer is not None and prefer in self.nodes and \
                held.get(prefer, need) == need and \
                not avoided(self.nodes[prefer].total, avoid) and \
                self.nodes[prefer].fits(need, self.exclusive, self.cpu_jobs):
            return self.nodes[prefer]
        if need.gpus <= 0:  # CPU workers: few nodes and workers, a plain scan
            fits = [n for n in self.nodes.values()
                    if n.fits(need, self.exclusive, self.cpu_jobs)]
            return min(fits, key=lambda n: (n.free.get("GPU", 0.0), n.free.get("CPU", 0.0),
                                            n.node_id), default=None)
        for kind, free in sorted(self._slots, key=lambda k: (k[1], k[0])):
            if free < need.gpus:
                continue
            for node_id in self._slots[(kind, free)]:
                n = self.nodes[node_id]
                if not can_ever_fit(n.total, need) or avoided(n.total, avoid):
                    break  # the whole kind lacks it (accelerator type, custom) or is kept
                if n.fits(need, self.exclusive, self.cpu_jobs) and \
                        (not held or held.get(node_id, need) == need):
                    return n
        return None

    def reserve(self, need: Need, avoid: frozenset[str] = frozenset(),
                skip: Callable[[str], bool] = lambda node_id: False) -> str | None:
        """Keep the node of most free GPUs that can run need (none of the types in avoid)
        for need alone until need is placed there: it drains as its workers end, where
        free GPUs scattered over many nodes would never add up to a wide worker's. Costs
        the kinds x free levels, not the nodes."""
        tries = 0
        for kind, free in sorted(self._slots, key=lambda k: (-k[1], k[0])):
            for node_id in self._slots[(kind, free)]:
                n = self.nodes[node_id]
                if not can_ever_fit(n.total, need) or avoided(n.total, avoid):
                    break
                if node_id not in self.held and not skip(node_id):
                    self.held[node_id] = need
                    return node_id
                tries += 1
                if tries >= RESERVE_TRIES:
                    return None
        return None

    def free_gpus(self, need: Need) -> float:
        """Free GPUs on the alive nodes that can ever run need (kinds x free levels)."""
        kinds = {i: kind for kind, i in self._kinds.items()}
        return sum(free * len(ids) for (i, free), ids in self._slots.items()
                   if free and can_ever_fit(dict(kinds[i]), need))

    def place(self, need: Need, prefer: str | None = None,
              avoid: frozenset[str] = frozenset()) -> str | None:
        """Book need on a node with room now (see _find); its id, or None."""
        best = self._find(need, prefer, avoid)
        if best is None:
            return None
        if self.held.get(best.node_id) == need:
            del self.held[best.node_id]
        self._index(best.node_id, False)
        for k, v in need.amounts:
            best.free[k] = best.free.get(k, 0.0) - v
        best.workers += 1
        if not need.gpus:
            best.cpu_workers += 1
        self._index(best.node_id, True)
        return best.node_id

    def release(self, node_id: str, need: Need) -> None:
        n = self.nodes.get(node_id)
        if n is None:
            return
        if n.alive:
            self._index(node_id, False)
        for k, v in need.amounts:
            n.free[k] = min(n.total.get(k, 0.0), n.free.get(k, 0.0) + v)
        n.workers = max(0, n.workers - 1)
        if not need.gpus:
            n.cpu_workers = max(0, n.cpu_workers - 1)
        if n.alive:
            self._index(node_id, True)

    def lose(self, node_id: str) -> None:
        self.held.pop(node_id, None)
        if node_id in self.nodes and self.nodes[node_id].alive:
            self._scarce.clear()
            self._index(node_id, False)
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


def infeasible_message(backend: str, model: str, why: str, books: Books) -> str:
    gpus = sum(n.total.get("GPU", 0.0) for n in books.nodes.values() if n.alive)
    return (f"jobs of {backend}/{model} can never be placed: {why} (the cluster has {gpus:g} "
            f"GPUs; nodes: {books.describe()}): check resources.gpus_per_job, "
            "accelerator_type and custom")
