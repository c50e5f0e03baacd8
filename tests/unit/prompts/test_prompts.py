"""The builtin prompt set and the prompt file loaders."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from llem.prompts.files import BUILTIN_PATH, Prompt, load_builtin, load_file, select
from tests.support.paths import ROOT


def words(p: Prompt) -> int:
    return len(p.text.split())


def test_builtin_is_large_varied_and_well_formed() -> None:
    prompts = load_builtin()
    assert BUILTIN_PATH.is_file()
    assert len(prompts) >= 250
    ids = [p.id for p in prompts]
    assert len(set(ids)) == len(ids)
    assert len({p.text for p in prompts}) == len(prompts)
    tasks = Counter(p.task for p in prompts)
    assert len(tasks) >= 8 and min(tasks.values()) >= 10, tasks
    for p in prompts:
        assert p.id.startswith(f"{p.task}-") and p.text.strip() and p.text.isascii()


def test_builtin_length_spread() -> None:
    lengths = sorted(words(p) for p in load_builtin())
    assert lengths[0] <= 6
    assert 350 <= lengths[-1] <= 420
    assert 15 <= statistics.median(lengths) <= 60
    assert sum(n < 10 for n in lengths) >= 20  # short questions
    assert sum(n >= 200 for n in lengths) >= 20  # long passages
    assert sum(50 <= n < 200 for n in lengths) >= 40


def test_builtin_file_is_jsonl_with_the_documented_keys() -> None:
    for line in BUILTIN_PATH.read_text(encoding="utf-8").splitlines():
        assert set(json.loads(line)) == {"id", "task", "prompt"}


def test_load_jsonl(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "first", "id": "a", "task": "qa"}\n\n'
                 '{"text": "second"}\n{"prompt": "third", "id": 7}\n')
    assert load_file(f) == [Prompt("a", "qa", "first"), Prompt("line-3", "file", "second"),
                            Prompt("7", "file", "third")]


def test_load_text(tmp_path: Path) -> None:
    f = tmp_path / "p.txt"
    f.write_text("  hello there \n\n\nsecond prompt\n")
    assert load_file(f) == [Prompt("line-1", "file", "hello there"),
                            Prompt("line-4", "file", "second prompt")]


@pytest.mark.parametrize("name, body, where", [
    ("empty.jsonl", "", "empty.jsonl"),
    ("blank.txt", "\n  \n", "blank.txt"),
    ("bad.jsonl", '{"prompt": "ok"}\n{"prompt": "cut\n', "bad.jsonl:2"),
    ("noprompt.jsonl", '{"prompt": "ok"}\n\n{"question": "x"}\n', "noprompt.jsonl:3"),
    ("notstr.jsonl", '{"prompt": 42}\n', "notstr.jsonl:1"),
    ("list.jsonl", '["a"]\n', "list.jsonl:1"),
])
def test_load_errors_name_file_and_line(tmp_path: Path, name: str, body: str,
                                         where: str) -> None:
    f = tmp_path / name
    f.write_text(body)
    with pytest.raises(ValueError) as info:
        load_file(f)
    msg = str(info.value)
    assert where in msg and "\n" not in msg


def test_select_is_seeded_and_takes_distinct_prompts() -> None:
    pool = load_builtin()
    a = select(pool, 20, seed=3)
    assert a == select(pool, 20, seed=3)
    assert a != select(pool, 20, seed=4)
    assert len(set(a)) == 20
    assert select(pool, 5, seed=3) == a[:5]  # a prefix: more prompts extend, never reshuffle
    assert select(pool, 0) == []


def test_select_cycles_when_n_exceeds_pool() -> None:
    pool = [Prompt(str(i), "t", f"p{i}") for i in range(4)]
    out = select(pool, 10, seed=1)
    assert out[:4] == out[4:8] and out[8:] == out[:2]
    assert sorted(p.id for p in out[:4]) == ["0", "1", "2", "3"]
    with pytest.raises(ValueError):
        select([], 1)


def test_select_is_stable_across_interpreters() -> None:
    """A fresh Python (another hash seed) picks the same prompts."""
    code = ("from llem.prompts.files import load_builtin, select; "
            "print(','.join(p.id for p in select(load_builtin(), 12, seed=7)))")
    root = ROOT
    outs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        outs.add(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True, cwd=root, env=env).stdout)
    assert outs == {",".join(p.id for p in select(load_builtin(), 12, seed=7)) + "\n"}
