"""Readers of a remote store that cannot be reached say so (they said "no store at ...",
sending the user to check a path that was right; a gs:// store without credentials or
network waited out GCS's 15 minutes of retries). Here GCS has neither: its client fails
after the retries the URI allows."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.cli import assert_one_error_line, run_cli

STORE = "gs://llem-no-such-bucket/x?retry_limit_seconds=1"


@pytest.mark.parametrize("args", [["results"], ["query", "SELECT 1"],
                                  ["report", "demo", "-o", "r.html"]])
def test_a_store_that_cannot_be_reached_is_named_so(args: list[str], tmp_path: Path) -> None:
    t0 = time.monotonic()
    r = run_cli(*args, "--store", STORE, cwd=tmp_path, timeout=120)
    assert_one_error_line(r, f"error: store {STORE} cannot be reached: ")
    assert time.monotonic() - t0 < 60
    assert list(tmp_path.iterdir()) == []
