"""The order of a campaign's jobs in time: which configuration runs before which.

Cycles repeat every configuration so that drift (GPU temperature, clocks, a neighbour)
falls on every configuration alike. `interleave` says across what: `groups` (the default)
runs cycle 0 of every load group before cycle 1 of any, each group paying a model load per
cycle; `within_group` loads each group once and interleaves cycles among its own points
only. `order` arranges the configurations of one cycle: `interleaved` (grid order),
`shuffled` (seeded), `williams` (a balanced Latin square, row c mod rows for cycle c), or
`sequential` (each point's cycles back to back: nothing to interleave across groups).
"""

from __future__ import annotations

import random
from typing import Any, TypeVar

T = TypeVar("T")

ORDERS = ("interleaved", "sequential", "shuffled", "williams")
INTERLEAVES = ("groups", "within_group")


def across_groups(campaign: Any) -> bool:
    """Whether cycles interleave across load groups: each (group, cycle) its own load."""
    return bool(campaign.interleave == "groups" and campaign.order != "sequential"
                and campaign.cycles > 1)


def williams_rows(n: int) -> int:
    """Rows of the Williams design of n configurations: n when n is even, 2n when odd."""
    return n if n % 2 == 0 else 2 * n


def williams_row(n: int, row: int) -> list[int]:
    """Row `row` (mod williams_rows(n)) of the Williams design of n configurations: a
    permutation of range(n).

    Row 0 is 0, 1, n-1, 2, n-2, ...; row r adds r (mod n). Every configuration takes every
    position once in n rows, and for even n each immediately precedes every other exactly
    once, so what ran just before (a hot GPU, a cache) is balanced too. For odd n that
    needs 2n rows: rows n..2n-1 are rows 0..n-1 reversed (each ordered pair twice)."""
    if n <= 0:
        return []
    r = row % williams_rows(n)
    first = [0] + [(j + 1) // 2 if j % 2 else n - j // 2 for j in range(1, n)]
    out = [(x + r) % n for x in first]
    return out[::-1] if r >= n else out


def arranged(items: list[T], cycle: int, order: str, key: str) -> list[T]:
    """items (the configurations of one cycle, in grid order) in the order they run:
    shuffled by a generator seeded with key (the seed, the load key, the cycle), or in row
    `cycle` of the Williams design; as they are otherwise."""
    if order == "shuffled":
        out = list(items)
        random.Random(key).shuffle(out)
        return out
    if order == "williams":
        return [items[i] for i in williams_row(len(items), cycle)]
    return list(items)
