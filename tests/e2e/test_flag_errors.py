"""A value a flag laid over the grid is named as the flag in a refusal, not as a line of the
file (the flag's value lands in the file's grid: section, whose line was named: the user was
sent to a line that does not hold it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem.api import prepare
from llem.errors import ConfigError
from tests.support.cli import assert_one_error_line, run_cli

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "configs" / "demo.yaml")
SERVER = str(ROOT / "configs" / "server-cpu.yaml")


@pytest.mark.parametrize(("args", "want"), [
    ([DEMO, "--max-new-tokens", "100000000"], "error: --max-new-tokens 100000000: must be <="),
    ([DEMO, "--num-prompts", "100000000"], "error: --num-prompts 100000000: must be <="),
    ([DEMO, "--backend", "nope"], "error: --backend 'nope': unknown backend 'nope'"),
    ([DEMO, "--model", "nope/nope!"], "error: --model 'nope/nope!': model 'nope/nope!' is not"),
    ([DEMO, "--name", "a b"], "error: --name 'a b': campaign name"),
    ([SERVER, "--batch-size", "4"], "error: --batch-size 4: 'batch_size' is an offline"),
    (["--model", "llem:tiny", "--max-new-tokens", "2000000"],
     "error: --max-new-tokens 2000000: must be"),
])
def test_a_flag_s_value_is_named_as_the_flag(args: list[str], want: str,
                                             tmp_path: Path) -> None:
    r = run_cli("run", *args, "--dry-run", "--store", str(tmp_path / "s"), cwd=tmp_path,
                timeout=120)
    assert_one_error_line(r, want)
    assert ".yaml:" not in r.stderr  # no line of the file: the file does not hold the value
    assert not (tmp_path / "s").exists()


def test_a_file_value_is_still_named_by_its_line(tmp_path: Path) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text("name: g\nmodels: [llem:tiny]\ngrid:\n  max_new_tokens: 100000000\n")
    r = run_cli("run", str(grid), "--batch-size", "2", "--dry-run", cwd=tmp_path, timeout=120)
    assert_one_error_line(r, "g.yaml:4: 'grid.max_new_tokens': must be <=")


def test_api_overrides_are_named_as_overrides(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^override max_new_tokens=100000000: must be <="):
        prepare(DEMO, {"max_new_tokens": 100_000_000}, plan_only=True)
