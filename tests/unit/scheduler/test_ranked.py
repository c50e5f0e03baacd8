"""llem.scheduler.ranked: an indexed heap keeps each group once, in key order, through sets,
moves and drops, and reads the first k without taking them out."""

from __future__ import annotations

import random

from llem.scheduler.ranked import Ranked


def test_first_k_in_key_order_through_moves_and_drops() -> None:
    rng = random.Random(7)
    r, keys = Ranked(), {}
    for step in range(3000):
        item = rng.randrange(200)
        if rng.random() < 0.2:
            r.drop(item)
            keys.pop(item, None)
        else:
            keys[item] = rng.choice([rng.uniform(0, 100), 5.0])  # ties too
            r.set(item, keys[item])
        if step % 100 == 0:
            want = sorted(keys, key=lambda i: (-keys[i], i))
            assert list(r.first(16)) == want[:16]
            assert list(r.first(10_000)) == want  # every item once, nothing taken out
            assert len(r) == len(keys) and all(i in r for i in keys)


def test_empty_and_missing() -> None:
    r = Ranked()
    assert list(r.first(3)) == [] and len(r) == 0
    r.drop(5)  # not in: nothing happens
    r.set(1, 2.0)
    r.set(1, 1.0)  # moved, not added twice
    assert list(r.first(3)) == [1] and 1 in r and 2 not in r
