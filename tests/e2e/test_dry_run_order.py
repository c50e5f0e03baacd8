"""`llem run --dry-run` says what interleaving cycles across load groups costs: the model
loads with `interleave: groups` (one per group per cycle) and with `within_group` (one per
group), in the text and in --json; a bad interleave or order is one located line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_cli

pytestmark = pytest.mark.slow

GRID = """\
name: loads
models: [a, b, c]
backends: [noop]
cycles: 4
grid: {{batch_size: [1, 2]}}
resources: {{gpus_per_job: 0}}
{extra}"""


def dry(tmp_path: Path, extra: str = "", *flags: str) -> tuple[int, str, str]:
    grid = tmp_path / "g.yaml"
    grid.write_text(GRID.format(extra=extra))
    r = run_cli("run", grid.name, "--dry-run", *flags, cwd=tmp_path)
    return r.returncode, r.stdout, r.stderr


def test_default_shows_a_load_per_group_per_cycle_and_the_alternative(tmp_path: Path) -> None:
    code, out, err = dry(tmp_path)
    assert code == 0, err
    assert "6 points x 4 cycles = 24 jobs, order interleaved, in 3 load groups (up to 12 " \
           "model loads: one per group per cycle)" in out
    assert "model loads: up to 12 with interleave: groups (cycle 0 of every group, then " \
           "cycle 1, ...), 3 with interleave: within_group" in out
    assert "load groups" in out and "\n3 " in out  # the table lists the 3 load groups


def test_within_group_loads_each_group_once(tmp_path: Path) -> None:
    code, out, err = dry(tmp_path, "interleave: within_group\n", "--order", "williams")
    assert code == 0, err
    assert "24 jobs, order williams, in 3 load groups (one model load each)" in out
    assert "model loads: up to 12 with interleave: groups" in out  # what the default costs


@pytest.mark.parametrize("extra,flags", [("", ("--cycles", "1")), ("", ("--order",
                         "sequential")), ("models: [a]\n", ())])
def test_nothing_to_interleave_says_nothing_more(tmp_path: Path, extra: str,
                                                 flags: tuple[str, ...]) -> None:
    grid = GRID.replace("models: [a, b, c]\n", "") if extra else GRID
    (tmp_path / "g.yaml").write_text(grid.format(extra=extra))
    r = run_cli("run", str(tmp_path / "g.yaml"), "--dry-run", *flags, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "(one model load each)" in r.stdout and "model loads:" not in r.stdout


def test_json_counts_both(tmp_path: Path) -> None:
    code, out, err = dry(tmp_path, "order: shuffled\nseed: 5\n", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert (plan["interleave"], plan["order"]) == ("groups", "shuffled")
    assert (plan["model_loads"], plan["model_loads_interleave_groups"],
            plan["model_loads_within_group"]) == (12, 12, 3)
    assert len(plan["load_groups"]) == 3 and plan["jobs"] == 24
    code, out, _ = dry(tmp_path, "interleave: within_group\n", "--json")
    assert json.loads(out)["model_loads"] == 3


@pytest.mark.parametrize("extra,flags,want", [
    ("interleave: across\n", (),
     "g.yaml:7: 'interleave': must be 'groups' or 'within_group' (got 'across')"),
    ("interleave: groups\n", ("--order", "sequential"),
     "g.yaml:7: 'interleave': groups alternates cycles across load groups, but order "
     "sequential runs each point's cycles back to back: remove interleave, or choose "
     "another order"),
])
def test_bad_interleave_is_one_line_exit_2(tmp_path: Path, extra: str,
                                           flags: tuple[str, ...], want: str) -> None:
    code, out, err = dry(tmp_path, extra, *flags)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"error: {want}"]


def test_williams_is_an_order_flag(tmp_path: Path) -> None:
    r = run_cli("run", "--help")
    assert "williams" in r.stdout
    code, _, err = dry(tmp_path, "", "--order", "latin")
    assert code == 2 and "'latin' is not one of" in err and "williams" in err
