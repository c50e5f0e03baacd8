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

LOAD_FIELDS = ("backend", "model", "dtype", "engine", "resources", "mode")
# Fields added after stores were written, with their defaults: left out of what is hashed
# while at their default, so a point that does not use them keeps the job_id (and load key)
# it always had and resume still finds it.
LATER_FIELDS: dict[str, Any] = {"mode": "offline", "server": None}


def canonical(obj: Any) -> str:
    """Key-order independent JSON: the form that is hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def digest(obj: Any, n: int = 16) -> str:
    return hashlib.sha256(canonical(obj).encode()).hexdigest()[:n]


def hashed(point: Point) -> dict[str, Any]:
    """The point's canonical form as hashed: LATER_FIELDS at their default left out."""
    dumped = point.model_dump(mode="json")
    for key, default in LATER_FIELDS.items():
        if dumped.get(key, default) == default:
            dumped.pop(key, None)
    return dumped


def job_id_of(point: Point) -> str:
    """Stable id of a configuration (not of a cycle): hash of its canonical resolved form."""
    return digest(hashed(point))


def load_key_of(point: Point) -> str:
    """Jobs with the same load key share one worker and one model load (server mode: one
    server, kept up across the rate levels of its group)."""
    dumped = hashed(point)
    return digest({k: dumped[k] for k in LOAD_FIELDS if k in dumped}, 12)


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
    timeline_index: int | None = None  # its place in the campaign's planned order

    @property
    def key(self) -> tuple[str, int]:
        return self.job_id, self.cycle

    def payload(self) -> dict[str, Any]:
        """Plain data for the worker (no pydantic objects cross the process boundary)."""
        return {"campaign": self.campaign, "point": self.point.model_dump(mode="json"),
                "cycle": self.cycle, "job_id": self.job_id, "load_key": self.load_key,
                "order": self.order, "order_seed": self.order_seed,
                "timeline_index": self.timeline_index}

    @classmethod
    def from_payload(cls, d: dict[str, Any]) -> Job:
        return cls(d["campaign"], Point.model_validate(d["point"]), d["cycle"], d["job_id"],
                   d["load_key"], d.get("order", "interleaved"), d.get("order_seed"),
                   d.get("timeline_index"))
