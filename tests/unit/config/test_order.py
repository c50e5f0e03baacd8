"""The Williams design (balanced Latin square) and the per-cycle arrangement of configurations."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from types import SimpleNamespace

import pytest

from llem.config.order import across_groups, arranged, williams_row, williams_rows


def _adjacent(rows: list[list[int]]) -> Counter[tuple[int, int]]:
    """How often each configuration immediately precedes each other, over rows."""
    return Counter((a, b) for row in rows for a, b in pairwise(row))


@pytest.mark.parametrize("n", [2, 4, 6, 8, 12])
def test_even_design_every_config_precedes_every_other_exactly_once(n: int) -> None:
    assert williams_rows(n) == n
    rows = [williams_row(n, r) for r in range(n)]
    assert all(sorted(row) == list(range(n)) for row in rows)  # each row a permutation
    for pos in range(n):  # a Latin square: every configuration once in every position
        assert sorted(row[pos] for row in rows) == list(range(n))
    assert _adjacent(rows) == Counter({(a, b): 1 for a in range(n) for b in range(n) if a != b})


@pytest.mark.parametrize("n", [3, 5, 7])
def test_odd_design_needs_two_squares_and_balances_over_them(n: int) -> None:
    assert williams_rows(n) == 2 * n
    rows = [williams_row(n, r) for r in range(2 * n)]
    for pos in range(n):
        assert Counter(row[pos] for row in rows) == dict.fromkeys(range(n), 2)
    assert _adjacent(rows) == Counter({(a, b): 2 for a in range(n) for b in range(n) if a != b})
    # one square alone is not balanced for odd n: why the design has 2n rows
    assert set(_adjacent(rows[:n]).values()) != {1}


def test_rows_repeat_with_the_design_and_first_row_is_the_classic_one() -> None:
    assert williams_row(4, 0) == [0, 1, 3, 2]
    assert williams_row(6, 0) == [0, 1, 5, 2, 4, 3]
    assert williams_row(4, 5) == williams_row(4, 1)  # cycle c uses row c mod rows
    assert williams_row(3, 3) == williams_row(3, 0)[::-1]
    assert williams_row(1, 7) == [0] and williams_row(0, 0) == []


def test_arranged_per_order() -> None:
    items = list("abcdef")
    assert arranged(items, 2, "interleaved", "k") == items
    assert arranged(items, 1, "williams", "k") == [items[i] for i in williams_row(6, 1)]
    one, again = arranged(items, 0, "shuffled", "7:key:0"), arranged(items, 0, "shuffled",
                                                                      "7:key:0")
    assert one == again and sorted(one) == items  # seeded: the same permutation every time
    others = {tuple(arranged(items, 0, "shuffled", f"7:key:{c}")) for c in range(6)}
    assert len(others) > 1  # each cycle its own permutation


def test_across_groups_only_where_cycles_can_interleave() -> None:
    def c(**kw: object) -> SimpleNamespace:
        return SimpleNamespace(**{"interleave": "groups", "order": "interleaved", "cycles": 3,
                                  **kw})

    assert across_groups(c())
    assert across_groups(c(order="williams")) and across_groups(c(order="shuffled"))
    assert not across_groups(c(interleave="within_group"))
    assert not across_groups(c(order="sequential"))
    assert not across_groups(c(cycles=1))
