"""A loaded grid file: the validated Campaign, its fixed values and axes, and where each
value was written (for errors with file and line). What the grid's expansion walks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llem.config.axes import Alternative, Axis, Where
from llem.config.models import Campaign
from llem.config.yaml_source import SourceMap


@dataclass
class Loaded:
    """A validated campaign: the file's model, its fixed values and axes, and its source map."""

    campaign: Campaign
    fixed: Alternative
    axes: list[Axis]
    source: SourceMap
    path: Path | None = None
    where: Where = field(default_factory=dict)  # fixed value's path -> where it was written
