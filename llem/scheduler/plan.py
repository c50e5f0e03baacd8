"""`llem run --dry-run`: what a campaign would do, decided without running or writing anything.

Counts (points, jobs, load groups, model loads with and without cycles interleaved across
groups), each job's GPUs and estimated memory per GPU
(llem.models.memory), checked against the GPUs the cluster reports: a job that no node can hold
(too few GPUs on one node, too little memory per GPU, no GPU of the required accelerator
type, too few CPUs) is listed as one that can never be placed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llem.backends import options_of
from llem.config.grid import load_groups
from llem.config.load import loads_from_hub
from llem.config.loaded import Loaded
from llem.config.models import Dataset, Point
from llem.config.order import across_groups
from llem.measure.gpu import local_gpus
from llem.models.memory import (
    Estimate,
    count_tokens,
    estimate,
    input_tokens_bound,
    read_config,
)
from llem.models.shape import shape_of
from llem.scheduler.placement import ACCEL_PREFIX, Need, NodeView, never_placed


@dataclass(frozen=True)
class Node:
    """One machine of the cluster, as the dry run sees it."""

    name: str
    gpus: int
    gpu_memory_bytes: list[float | None]  # per GPU; None where unknown
    gpu_names: list[str]
    cpus: float
    accelerator: str | None = None
    custom: dict[str, float] = field(default_factory=dict)  # Ray custom resources

    def view(self) -> NodeView:
        """The node for placement.never_placed (Ray's resource names)."""
        total = {"GPU": float(self.gpus), "CPU": float(self.cpus), **self.custom}
        if self.accelerator:
            total[ACCEL_PREFIX + self.accelerator] = 1.0
        return NodeView(self.name, total, tuple(self.gpu_memory_bytes), tuple(self.gpu_names))


@dataclass
class PointPlan:
    point: Point
    group: int  # index into Plan.groups
    estimate: Estimate | None
    unknown: str | None  # why there is no estimate
    input_known: bool  # False: the prompts' length was not known (HF dataset)
    unplaceable: str | None  # why no node can ever run it
    input_exact: bool = False  # True: counted with the model's tokenizer (or a fixed length)


@dataclass
class GroupPlan:
    backend: str
    model: str
    dtype: str
    gpus: int
    points: list[PointPlan] = field(default_factory=list)


@dataclass
class Plan:
    name: str
    cycles: int
    order: str
    groups: list[GroupPlan]
    nodes: list[Node]
    interleave: str = "groups"  # the campaign's interleave (llem.config.order)
    across: bool = False  # cycles do interleave across groups (two or more, cycles > 1)

    @property
    def model_loads(self) -> int:
        """Model loads the campaign plans (a split group or a retried worker adds more)."""
        return self.loads_across if self.across else len(self.groups)

    @property
    def loads_across(self) -> int:
        """Model loads with `interleave: groups`: one per group per cycle where that
        applies (two or more groups, cycles > 1, an order other than sequential); with
        `within_group` it is one per group (len(groups))."""
        applies = len(self.groups) > 1 and self.cycles > 1 and self.order != "sequential"
        return len(self.groups) * (self.cycles if applies else 1)

    @property
    def points(self) -> list[PointPlan]:
        return [p for g in self.groups for p in g.points]

    @property
    def jobs(self) -> int:
        return len(self.points) * self.cycles


def local_nodes() -> tuple[list[Node], str]:
    """This machine (where an embedded Ray would start): its NVML GPUs and CPU count."""
    gpus, reason = local_gpus()
    node = Node("this machine", len(gpus),
                [g["memory_total_mib"] * 2**20 if g.get("memory_total_mib") else None
                 for g in gpus], [str(g.get("name")) for g in gpus], float(os.cpu_count() or 1))
    where = "this machine (embedded Ray; none started for the dry run)"
    return [node], where + (f": no GPU ({reason})" if not gpus and reason else "")


def cluster_nodes(address: str) -> tuple[list[Node], str]:
    """The alive nodes of the Ray cluster at address (GPU memory from each node's NVML)."""
    from llem.scheduler.cluster import describe

    info = describe(address)
    nodes = []
    for n in info["nodes"]:
        if not n["alive"]:
            continue
        mems: list[float | None] = [g["memory_total_mib"] * 2**20
                                    if g.get("memory_total_mib") else None
                                    for g in n["gpu_info"]]
        count = int(n["gpus"])
        mems = (mems + [None] * count)[:count]
        names = [str(g.get("name")) for g in n["gpu_info"]]
        custom = {k: float(v) for k, v in n.get("resources", {}).items() if k not in
                  ("GPU", "CPU", "memory", "object_store_memory") and
                  not k.startswith(("node:", ACCEL_PREFIX))}
        nodes.append(Node(n["ip"], count, mems, names, n["cpus"], n["accelerator"], custom))
    return nodes, f"Ray cluster at {address} (ray {info['ray_version']})"


def quantization_of(p: Point) -> str | None:
    """The weights' quantization, by the backend's own rule (its options module)."""
    rule = getattr(options_of(p.backend), "quantization", None)
    return rule(p.engine) if rule else None


def gpu_fraction(p: Point) -> float:
    """The share of each GPU the backend may use (vLLM preallocates gpu_memory_utilization)."""
    rule = getattr(options_of(p.backend), "gpu_fraction", None)
    return float(rule(p.engine)) if rule else 1.0


def place(p: Point, need: float | None, nodes: list[Node]) -> str | None:
    """None when some node can hold the job, else why none ever can (the driver's check,
    placement.never_placed, with the memory estimate added)."""
    return never_placed(Need.of(p.resources), [n.view() for n in nodes], need, gpu_fraction(p))


def make_plan(loaded: Loaded, nodes: list[Node],
              prompts: Callable[[Dataset], list[str] | None]) -> Plan:
    """Walk every point of the campaign (lazily, group by group) and plan it."""
    c = loaded.campaign
    plan = Plan(c.name, c.cycles, c.order, [], nodes, c.interleave)
    shapes: dict[str, Any] = {}
    for g in load_groups(loaded):
        first = g.first
        plan.groups.append(GroupPlan(first.backend, first.model, first.dtype,
                                     first.resources.gpus_per_job))
        for p in g.points():
            est, why, known, exact = _estimate(p, shapes, prompts)
            need = est.total_bytes if est is not None else None
            plan.groups[-1].points.append(
                PointPlan(p, len(plan.groups) - 1, est, why, known, place(p, need, nodes),
                          exact))
    plan.across = across_groups(c) and len(plan.groups) > 1
    return plan


def _estimate(p: Point, cache: dict[Any, Any],
              prompts: Callable[[Dataset], list[str] | None]) -> tuple[Estimate | None,
                                                                      str | None, bool, bool]:
    """(estimate or None, why none, input length known, input length exact)."""
    if not loads_from_hub(p.backend):  # noop; endpoint (the server elsewhere holds it)
        return None, f"the {p.backend} backend loads no model", True, True
    if p.model not in cache:
        cfg, why = read_config(p.model)
        try:
            cache[p.model] = (shape_of(cfg), None) if cfg is not None else (None, why)
        except (KeyError, ValueError, TypeError) as exc:
            cache[p.model] = (None, f"config of {p.model}: {exc}")  # ShapeError says what
    shape, why = cache[p.model]
    if shape is None:
        return None, why, True, True
    texts = prompts(p.dataset)
    inp: int | None
    if p.input_policy == "pad" and p.max_input_tokens is not None:
        inp, exact = p.max_input_tokens, True  # every prompt is made exactly this long
    else:
        key = (p.model, p.dataset.model_dump_json())
        if key not in cache:
            cache[key] = count_tokens(p.model, texts) if texts else None
        inp, exact = input_tokens_bound(p.max_input_tokens, texts, cache[key])
    est = estimate(shape, dtype=p.dtype, batch_size=p.batch_size, input_tokens=inp or 0,
                   output_tokens=p.max_new_tokens, gpus=p.resources.gpus_per_job,
                   quantization=quantization_of(p))
    return est, None, inp is not None, exact
