"""Each accelerator type's GPUs shared between the groups tied to it and the untied ones.

A group that asks for an accelerator type (resources.accelerator_type) can run only on that
type's nodes; an untied group can run anywhere. Untied groups that start first would fill a
scarce type's nodes, and the groups tied to it would then grow only as those end, while the
other nodes idle in the tail (1,024 simulated GPUs, seed 2: A100s full to the end, H100s
idle from 70% of the campaign, 1.33x the bound). So the GPUs of type a that its tied groups
need to finish with the rest are theirs: with W_a their work left (GPU-seconds), G_a the
type's GPUs and T = max(all work left / all GPUs, max over types of W_a / G_a) the even
finish, untied workers hold at most G_a - W_a / T of type a's GPUs.

The work left is kept up to date per group (O(1) an event): jobs left x their expected time
x GPUs a job; a job's time before any of its group finished is decide.PRIOR_S, the same for
every group, so the shares, ratios of works, do not depend on it.

llem.scheduler.core.SchedulerCore and the Ray driver (llem.scheduler.driver, its pool
holding and freeing GPUs: llem.scheduler.pool) keep one Shares each and ask it the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llem.scheduler.decide import PRIOR_S, Runnable
from llem.scheduler.placement import ACCEL_PREFIX, EPS, Books, Need, accelerator


def tied_to(need: Need) -> str | None:
    """The accelerator type need asks for, or None."""
    return next((k[len(ACCEL_PREFIX):] for k, _ in need.amounts if k.startswith(ACCEL_PREFIX)),
                None)


@dataclass
class Shares:
    """Work left per accelerator type a group is tied to (None: untied), the GPUs that
    untied workers hold on each type's nodes, and the alive GPUs per type (gpus)."""

    work: dict[str | None, float] = field(default_factory=dict)
    part: dict[int, float] = field(default_factory=dict)  # group id -> its share of work
    untied: dict[str, float] = field(default_factory=dict)  # type -> GPUs untied workers hold
    gpus: dict[str | None, float] = field(default_factory=dict)  # alive GPUs per type
    types: dict[str, str | None] = field(default_factory=dict)  # node -> its type (seen)

    def touch(self, gid: int, g: Runnable) -> None:
        """g's jobs or job time changed."""
        left = g.left() * (PRIOR_S if g.job_s is None else g.job_s) * max(1, g.need.gpus)
        tied = tied_to(g.need)
        self.work[tied] = self.work.get(tied, 0.0) + left - self.part.get(gid, 0.0)
        self.part[gid] = left

    def hold(self, node_type: str | None, need: Need, sign: int) -> None:
        """A worker of need takes (sign 1) or frees (-1) its GPUs on a node of node_type."""
        if node_type is not None and tied_to(need) is None and need.gpus:
            self.untied[node_type] = self.untied.get(node_type, 0.0) + sign * need.gpus

    def hold_at(self, books: Books, node: str, need: Need, sign: int) -> None:
        """hold, on node (its type read once from books)."""
        if node not in self.types:
            n = books.nodes.get(node)
            self.types[node] = accelerator(n.total) if n else None
        self.hold(self.types[node], need, sign)

    def off(self, need: Need) -> frozenset[str]:
        """The accelerator types need must keep off now, of the alive GPUs in gpus."""
        return self.avoid(need, self.gpus)

    def avoid(self, need: Need, gpus: Mapping[str | None, float]) -> frozenset[str]:
        """The accelerator types an untied need must keep off now (none for a tied need, and
        none where all GPUs are of one type: there is nowhere else to go, a GPU kept would
        idle). gpus: alive GPUs per accelerator type (None: nodes without one)."""
        if tied_to(need) is not None or not need.gpus:
            return frozenset()
        total = sum(gpus.values())
        typed = {a: n for a, n in gpus.items() if a is not None and n > 0}
        if not typed or total <= 0:
            return frozenset()
        finish = max([sum(self.work.values()) / total] +
                     [self.work.get(a, 0.0) / n for a, n in typed.items()])
        if finish <= 0:
            return frozenset()
        return frozenset(a for a, n in typed.items()
                         if n < total and self.untied.get(a, 0.0) + need.gpus >
                         n - self.work.get(a, 0.0) / finish + EPS)


def gpus_per_type(kinds: Mapping[tuple[tuple[str, float], ...], float]
                  ) -> dict[str | None, float]:
    """Alive GPUs per accelerator type, from GPUs per kind of node (its resource totals)."""
    out: dict[str | None, float] = {}
    for kind, n in kinds.items():
        a = accelerator(dict(kind))
        out[a] = out.get(a, 0.0) + n
    return out


def alive_gpus(books: Books) -> dict[str | None, float]:
    """Alive GPUs per accelerator type of books' nodes: the driver's, on a node change
    (the core counts them per kind of node as nodes come and go)."""
    kinds: dict[tuple[tuple[str, float], ...], float] = {}
    for n in books.nodes.values():
        if n.alive:
            kind = tuple(sorted((k, float(v)) for k, v in n.total.items()
                                if not k.startswith("node:")))
            kinds[kind] = kinds.get(kind, 0.0) + float(n.total.get("GPU", 0.0))
    return gpus_per_type(kinds)
