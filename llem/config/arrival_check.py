"""An arrival setting written for points that send no arrivals: without
measurement.request_rate every request is queued at once (offline), so `arrival: constant`
or an arrival_seed changed nothing, yet each row was labelled with it; and constant gaps
draw nothing, so arrival_seed beside arrival: constant is unused too. Refused at its line
when no point it reaches uses it (server points take their load from server:, and
llem.config.checks.check_mode_values judges them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llem.config.grid import never_used
from llem.config.loaded import Loaded
from llem.config.models import Measurement
from llem.config.yaml_source import Loc

RATE, ARRIVAL, SEED = "measurement.request_rate", "measurement.arrival", "measurement.arrival_seed"
WANTED = ("mode", RATE, ARRIVAL, SEED)
WHY = {ARRIVAL: "never used: no point it reaches sets measurement.request_rate, so every "
               "request is queued at once and no gap is drawn; each row would be labelled "
               "with it",
       SEED: "never used: no point it reaches draws poisson gaps (that needs "
             "measurement.request_rate and arrival: poisson); each row would be labelled "
             "with it"}
HINT = {ARRIVAL: "set measurement.request_rate (requests/s) for arrivals to be drawn, or "
                 "remove it",
        SEED: "arrival_seed seeds poisson gaps: set measurement.request_rate with arrival: "
              "poisson, or remove it"}


def check_arrival_values(loaded: Loaded) -> None:
    """A ConfigError at the line of an arrival or arrival_seed value off its default that no
    point it reaches uses."""
    def judge(values: dict[str, Any], where: dict[str, Any]) -> Iterator[tuple[Loc, str, bool]]:
        server = values.get("mode", "offline") == "server"
        drawn = values.get(RATE) is not None
        poisson = values.get(ARRIVAL, Measurement.model_fields["arrival"].default) == "poisson"
        for path, used in ((ARRIVAL, drawn), (SEED, drawn and poisson)):
            field = path.split(".", 1)[1]
            if path in values and path in where and \
                    values[path] != Measurement.model_fields[field].default:
                yield tuple(where[path]), path, server or used

    found = never_used(loaded, WANTED.__contains__, judge)
    if found is not None:
        loc, path = found
        raise loaded.source.error(loc, WHY[path], hint=HINT[path])
