"""Include/exclude rules matched through their index (llem.config.rules.Rules) decide as
the plain scan over every rule does (llem.config.grid._matches), for values a grid tells
apart (true is not 1, 1 is 1.0, lists and maps, absent paths) and rules of one or several
paths, single values or lists; and a grid of 9,000 combinations x 1,000 rules loads in
well under a second (it took 11 s scanning)."""

from __future__ import annotations

import random
import time
from pathlib import Path

from llem.config.grid import _matches, count_points
from llem.config.load import load_campaign
from llem.config.rules import Rules

VALUES = [0, 1, 1.0, 2, 2.5, True, False, "1", "a", "b", None, [1, 2], [1], {"k": 1},
          {"k": 1.0}]
PATHS = ["batch_size", "seed", "dtype", "engine.x"]


def _rule(rng: random.Random) -> dict:
    rule = {}
    for path in rng.sample(PATHS, rng.randint(1, 3)):
        rule[path] = rng.sample(VALUES, rng.randint(1, 3)) if rng.random() < 0.3 \
            else rng.choice(VALUES)
    return rule


def test_the_index_decides_as_the_scan() -> None:
    rng = random.Random(5)
    for _ in range(200):
        rules = [_rule(rng) for _ in range(rng.randint(0, 12))]
        indexed = Rules(rules, _matches)
        assert bool(indexed) == bool(rules)
        for _ in range(50):
            values = {p: rng.choice(VALUES) for p in PATHS if rng.random() < 0.85}
            assert indexed.any(values) == any(_matches(values, r) for r in rules), \
                (values, rules)


def test_many_rules_over_many_points_load_quickly(tmp_path: Path) -> None:
    rules = "\n".join(f"  - {{seed: {i % 300}, batch_size: {i // 300 + 1}}}"
                      for i in range(1000))  # 1,000 distinct (seed, batch_size) pairs
    grid = tmp_path / "g.yaml"
    grid.write_text(f"name: r\nmodels: [m]\nbackends: [noop]\ngrid:\n  temperature: 0.5\n"
                    f"  seed: {list(range(300))}\n  batch_size: {list(range(1, 31))}\n"
                    f"  max_new_tokens: [1, 2, 3]\nexclude:\n{rules}\n")
    t0 = time.perf_counter()
    loaded = load_campaign(grid)
    assert count_points(loaded) == (300 * 30 - 1000) * 3
    assert time.perf_counter() - t0 < 5  # a scan over every rule: 11 s here
