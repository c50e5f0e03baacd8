"""The job ids `llem submit` makes are ones `llem status`, `logs` and `stop` accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem.cli.given import JOB_ID
from llem.scheduler.submit import job_name


@pytest.mark.parametrize("name", ["g.yaml", "my grid.yaml", "a#b?c.yaml", "../x/.hidden.yaml",
                                  "é.yaml", "-.yaml", "x" * 250 + ".yaml"])
def test_a_submitted_job_id_is_one_status_accepts(name: str) -> None:
    sid = f"llem-{job_name(Path(name))}-20250101-120000-1234"
    assert JOB_ID.fullmatch(sid), sid


def test_ray_ids_are_accepted_and_paths_are_not() -> None:
    for ok in ("raysubmit_4LamXRuQpYdSMg7J", "02000000", "llem-g-20250101-120000-7",
               "my.job_1"):
        assert JOB_ID.fullmatch(ok), ok
    for bad in ("", "..", "../../etc/passwd", "a b", "a\tb", "x?y=1", "x#y", "a/b", "é",
                "x" * 241):
        assert not JOB_ID.fullmatch(bad), bad
