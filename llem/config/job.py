"""One job: a resolved point and a cycle, with the ids that name it everywhere.

job_id is the hash of the point's canonical form (the same configuration has the same id
in every campaign and session); load_key groups the jobs that share one model load. A
worker process imports this module and the point models only, not the grid's expansion.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from llem.config.models import Point

LOAD_FIELDS = ("backend", "model", "dtype", "engine", "resources")


def canonical(obj: Any) -> str:
    """Key-order independent JSON: the form that is hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def digest(obj: Any, n: int = 16) -> str:
    return hashlib.sha256(canonical(obj).encode()).hexdigest()[:n]


def job_id_of(point: Point) -> str:
    """Stable id of a configuration (not of a cycle): hash of its canonical resolved form."""
    return digest(point.model_dump(mode="json"))


def load_key_of(point: Point) -> str:
    """Jobs with the same load key share one worker and one model load."""
    dumped = point.model_dump(mode="json")
    return digest({k: dumped[k] for k in LOAD_FIELDS}, 12)


@dataclass(frozen=True, slots=True)
class Job:
    """One measured run: a point and a cycle."""

    campaign: str
    point: Point
    cycle: int
    job_id: str
    load_key: str
    order: str = "interleaved"  # the campaign's cycle order, recorded with the result
    order_seed: int | None = None  # the shuffle's seed (order: shuffled)

    @property
    def key(self) -> tuple[str, int]:
        return self.job_id, self.cycle

    def payload(self) -> dict[str, Any]:
        """Plain data for the worker (no pydantic objects cross the process boundary)."""
        return {"campaign": self.campaign, "point": self.point.model_dump(mode="json"),
                "cycle": self.cycle, "job_id": self.job_id, "load_key": self.load_key,
                "order": self.order, "order_seed": self.order_seed}

    @classmethod
    def from_payload(cls, d: dict[str, Any]) -> Job:
        return cls(d["campaign"], Point.model_validate(d["point"]), d["cycle"], d["job_id"],
                   d["load_key"], d.get("order", "interleaved"), d.get("order_seed"))
