"""Hostile input, round five: new members of the families of rounds one to four. Prompt
files whose lines are JSON but no prompt (nested past the decoder's depth, a lone UTF-16
surrogate that failed every job in the tokenizer after Ray started) or that start with a BOM;
a merge key of scalars said once; dataset settings the chosen source ignores."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem.config.checks import check_datasets
from llem.errors import UserError
from tests.support.grids import error_of, load

# --- a prompt file's lines ------------------------------------------------------------------


@pytest.mark.parametrize(("line", "want"), [
    ('{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}",  # was an internal RecursionError
     r"p\.jsonl:1: invalid JSON \(nested too deeply\)"),
    ('{"prompt": "hello \\ud800 there"}',  # every job failed: TextEncodeInput must be ...
     r"p\.jsonl:1: the prompt holds an escape of half a UTF-16 pair"),
    ('{"text": "x \\udfff"}', r"p\.jsonl:1: the prompt holds an escape of half a UTF-16"),
])
def test_a_prompt_line_that_is_no_text(line: str, want: str, tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text(line + "\n")
    loaded = load(f"dataset: {{source: file, path: {tmp_path / 'p.jsonl'}}}\n")
    with pytest.raises(UserError, match=r":4: 'dataset\.path': bad prompt file: .*" + want):
        check_datasets(loaded)


def test_prompt_files_written_by_notepad_and_real_pairs_pass(tmp_path: Path) -> None:
    (tmp_path / "bom.jsonl").write_bytes(b'\xef\xbb\xbf{"prompt": "a"}\r\n{"prompt": "b"}\r\n')
    (tmp_path / "pair.jsonl").write_text('{"prompt": "\\ud83d\\ude00 smile"}\n')  # one emoji
    (tmp_path / "deep.jsonl").write_text('{"prompt": "x", "meta": ' + "[" * 50 + "]" * 50
                                         + "}\n")
    for name in ("bom.jsonl", "pair.jsonl", "deep.jsonl"):
        check_datasets(load(f"dataset: {{source: file, path: {tmp_path / name}}}\n"))


# --- YAML: a merge key of scalars -----------------------------------------------------------


def test_a_merge_of_scalars_is_one_mistake() -> None:
    msg = error_of("grid:\n  <<: [1, 2, 3]\n")
    assert msg == "grid.yaml:5: 'grid': '<<' (merge) takes a map or a list of maps", msg


def test_a_merge_of_maps_and_scalars_names_the_scalar_once() -> None:
    msg = error_of("a: &a {batch_size: 2}\ngrid:\n  <<: [*a, 5, 6]\n")
    assert msg.count("'<<' (merge) takes a map") == 1, msg


# --- dataset settings the chosen source would ignore -----------------------------------------


@pytest.mark.parametrize(("body", "want"), [
    ("dataset: {source: builtin, path: mine.jsonl}\n",
     r":4: 'dataset\.path': dataset\.source 'builtin' names its own dataset; dataset\.path "
     r"would be ignored"),
    ("dataset: {path: mine.jsonl}\n",  # builtin by default: the file was never read
     r":4: 'dataset\.path': dataset\.source 'builtin' names its own dataset"),
    ("dataset: {source: [builtin, file], path: mine.jsonl}\n",
     r":4: 'dataset\.path': .*a group: grid: \{dataset: \[\{source: builtin\}"),
    ("dataset: {source: file, path: mine.jsonl, column: question}\n",
     r":4: 'dataset\.column': dataset\.column is read from an hf dataset only; with "
     r"dataset\.source 'file' it would be ignored"),
    ("dataset: {source: file, path: mine.jsonl, split: test}\n",
     r":4: 'dataset\.split': dataset\.split is read from an hf dataset only"),
    ("dataset: {source: ai_energy_score, split: test}\n",
     r":4: 'dataset\.split': .*with dataset\.source 'ai_energy_score' it would be ignored"),
    ("dataset: {column: text}\n", r":4: 'dataset\.column': .*'builtin' it would be ignored"),
])
def test_a_dataset_setting_the_source_ignores(body: str, want: str) -> None:
    with pytest.raises(Exception, match=want):
        load(body)


@pytest.mark.parametrize("body", [
    "dataset: {source: hf, path: org/ds, split: test, column: question}\n",
    "grid:\n  dataset: [{source: builtin}, {source: file, path: mine.jsonl}]\n",
    "dataset: {source: builtin, num_prompts: 4, order: file}\n",
])
def test_dataset_settings_a_source_reads_pass(body: str) -> None:
    load(body)
