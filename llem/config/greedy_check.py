"""A sampling setting written for greedy points only (llem.config.modes.GREEDY_UNUSED): at
temperature 0 every backend takes the likeliest token, so `temperature: 0` beside
`top_p: [0.9, 0.5]` ran one configuration twice, each row labelled with a top_p it never
used. Where some points a value reaches sample (temperature > 0, written or from their
preset), the greedy ones reset it (llem.config.models.Point); where none does, refused here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llem.config.grid import never_used
from llem.config.loaded import Loaded
from llem.config.models import Point
from llem.config.modes import GREEDY_UNUSED
from llem.config.vocab import PRESETS
from llem.config.yaml_source import Loc

WANTED = ("temperature", "preset", *GREEDY_UNUSED)


def check_greedy_values(loaded: Loaded) -> None:
    """A ConfigError at the line of a GREEDY_UNUSED value off its default that no point it
    reaches uses (each of them greedy)."""
    def judge(values: dict[str, Any], where: dict[str, Any]) -> Iterator[tuple[Loc, str, bool]]:
        preset = PRESETS.get(values.get("preset") or "", {})
        temperature = values.get("temperature", preset.get("temperature", 0.0))
        for field in GREEDY_UNUSED:
            if field in values and field in where and \
                    values[field] != Point.model_fields[field].default:
                yield tuple(where[field]), field, temperature != 0

    found = never_used(loaded, WANTED.__contains__, judge)
    if found is not None:
        loc, field = found
        raise loaded.source.error(
            loc, f"{field} is a sampling setting, and every point it reaches decodes "
            "greedily (temperature 0): each value would run the same job, labelled with "
            "a setting it never used", hint=GREEDY_UNUSED[field])
