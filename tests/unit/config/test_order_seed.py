"""The campaign's seed: orders configurations only under order: shuffled; beside another
order it was accepted and drew nothing (and --seed 5 without --order shuffled too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import assert_one_error_line, run_cli
from tests.support.grids import error_of, load


@pytest.mark.parametrize("order", ["", "order: interleaved\n", "order: williams\n",
                                   "order: sequential\n"])
def test_a_seed_beside_an_order_that_draws_nothing_is_refused(order: str) -> None:
    msg = error_of(f"{order}seed: 5\n")
    assert "'seed': seed: is the seed of order: shuffled, and order" in msg, msg
    assert load("order: shuffled\nseed: 5\n").campaign.seed == 5


def test_the_flag_is_named(tmp_path: Path) -> None:
    r = run_cli("run", "--model", "llem:tiny", "--seed", "5", "--dry-run", cwd=tmp_path)
    assert_one_error_line(r, "error: --seed 5: seed: is the seed of order: shuffled")
