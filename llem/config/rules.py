"""Include/exclude rules matched against every point of a grid, indexed: a grid of 90,000
points and 1,000 rules matched each point against every rule (90 million comparisons,
minutes). Each rule is filed under one value it asks for (its first path with a single
plain value), so a point is compared only with the rules filed under its own values there
(and the few rules with no such value). The match itself is llem.config.grid's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Alternative = dict[str, Any]


def value_key(v: Any) -> tuple[str, Any] | None:
    """A hashable key under which values a grid tells apart differ and values it takes as
    one (1 and 1.0) agree: a boolean is not a number. None for a list, a map or another type
    (not filed)."""
    if isinstance(v, bool):
        return "b", v
    if isinstance(v, int | float):
        return "n", v
    if isinstance(v, str):
        return "s", v
    if v is None:
        return "0", None
    return None


class Rules:
    """A list of rules and match(values, rule) -> bool; any(values) is any(match(values, r)
    for r in rules), asked of the rules filed under the point's values only."""

    def __init__(self, rules: list[dict[str, Any]],
                 match: Callable[[Alternative, dict[str, Any]], bool]) -> None:
        self.rules, self.match = rules, match
        self.filed: dict[str, dict[tuple[str, Any], list[int]]] = {}
        self.rest: list[int] = []  # rules with no single plain value: asked of every point
        for i, rule in enumerate(rules):
            for path, want in rule.items():
                key = value_key(want)
                if key is not None:
                    self.filed.setdefault(path, {}).setdefault(key, []).append(i)
                    break
            else:
                self.rest.append(i)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def any(self, values: Alternative) -> bool:
        for path, by_value in self.filed.items():
            key = value_key(values.get(path))
            if key is None:  # not a plain value: any rule filed here may still match
                hits = [i for ids in by_value.values() for i in ids]
            else:
                hits = by_value.get(key, [])
            if any(self.match(values, self.rules[i]) for i in hits):
                return True
        return any(self.match(values, self.rules[i]) for i in self.rest)
