"""Grid files: parsing, validation and the models of a campaign and of one point.

The names below load on first use: a worker process needs the models of a point
(llem.config.models), not the grid file's parser, and every import costs each worker's
start (4 start at once on a node's shared cores before any job runs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llem.config.load import Loaded, load_campaign, load_text
    from llem.config.models import Campaign, Dataset, Measurement, Point, Resources

_WHERE = {"Loaded": "load", "load_campaign": "load", "load_text": "load", "Campaign": "models",
          "Dataset": "models", "Measurement": "models", "Point": "models",
          "Resources": "models"}

__all__ = ["Campaign", "Dataset", "Loaded", "Measurement", "Point", "Resources", "load_campaign",
           "load_text"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"llem.config.{_WHERE[name]}"), name)
