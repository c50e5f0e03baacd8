"""Hostile input, round five, through the CLI as a user runs it (one subprocess each, no Ray
started): prompt-file lines that are no text, a merge key of scalars, a dataset path the
source ignores, option values left empty, and dashboard addresses `llem submit` cannot use.
Each: exactly one `error:` line, exit 2, quickly, nothing written, no credential shown."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.bad_grids import assert_one_line_error
from tests.support.cli import assert_one_error_line
from tests.support.grids import HEAD
from tests.support.paths import LLEM

NO_RAY = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # no cluster joined

SECRET = "PlantedTokPw0123"


def _cli(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    r = subprocess.run([*LLEM, *(a.format(d=tmp_path) for a in args)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120, env=NO_RAY, check=False)
    return r, time.monotonic() - t0


def _one_line(r: subprocess.CompletedProcess[str], want: str) -> None:
    assert_one_error_line(r, want, SECRET)


@pytest.mark.parametrize(("prompts", "source", "want"), [
    # a line nested past the JSON decoder's depth: an internal RecursionError
    ('{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "file",
     r":4: 'dataset\.path': bad prompt file: .*p\.jsonl:1: invalid JSON \(nested too deeply\)"),
    # half a UTF-16 pair: every job failed in the tokenizer, after Ray started
    ('{"prompt": "ok"}\n{"prompt": "x \\ud800"}\n', "file",
     r":4: 'dataset\.path': bad prompt file: .*p\.jsonl:2: the prompt holds an escape of half"),
    # a prompt file given where the source is builtin: it was never read
    ('{"prompt": "mine"}\n', "builtin",
     r":4: 'dataset\.path': dataset\.source 'builtin' names its own dataset"),
])
def test_cli_refuses_prompt_files_that_hold_no_prompt(prompts: str, source: str, want: str,
                                                      tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text(prompts)
    grid = tmp_path / "grid.yaml"
    grid.write_text(HEAD + f"dataset: {{source: {source}, path: p.jsonl}}\n")
    r, _ = _cli(tmp_path, "run", str(grid), "--store", "{d}/store")
    assert_one_line_error(r, grid, want)
    assert sorted(os.listdir(tmp_path)) == ["grid.yaml", "p.jsonl"]


def test_cli_says_a_merge_of_scalars_once(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(HEAD + "grid:\n  <<: [1, 2]\n")
    r, _ = _cli(tmp_path, "run", str(grid), "--dry-run")
    assert_one_line_error(r, grid, r":5: 'grid': '<<' \(merge\) takes a map or a list of maps")


@pytest.mark.parametrize(("args", "want"), [
    (["report", "c", "--job", "", "--store", "{d}/st"], "error: --job is empty"),  # DuckDB's
    (["report", "c", "--png", "", "--store", "{d}/st"], "error: --png is empty"),  # cwd PNGs
    (["report", "c", "-o", "", "--store", "{d}/st"], "error: --output is empty"),  # "-o . is a
    (["export", "c", "-o", " ", "--store", "{d}/st"], "error: --output is empty"),  # device"
    (["run", "", "--dry-run"], "error: GRID is empty: give a path"),  # ".: is a folder"
    (["tiny-model", ""], "error: DIRECTORY is empty"),  # "tiny-model .: ... is not empty"
    (["submit", "grid.yaml", "--address", ""], "error: --address is empty"),  # Ray's, cut short
    (["compact", "{d}", "--campaign", ""], "error: --campaign is empty"),
])
def test_cli_refuses_an_empty_value(args: list[str], want: str, tmp_path: Path) -> None:
    (tmp_path / "grid.yaml").write_text(HEAD)
    r, _ = _cli(tmp_path, *args)
    _one_line(r, want)
    assert sorted(os.listdir(tmp_path)) == ["grid.yaml"]


@pytest.mark.parametrize(("address", "want"), [
    (" http://127.0.0.1:1", "--address ' http://127.0.0.1:1' is not a dashboard address"),
    ("http://127.0.0.1:1\n", "is not a dashboard address"),
    ("ftp://127.0.0.1:21", "--address 'ftp://127.0.0.1:21' is not a dashboard address"),
    ("http://127.0.0.1:99999", "is not a dashboard address: give http://HEAD:8265"),
    ("http://[::1", "--address 'http://[::1' is not a dashboard address"),
    # a GCS port where nothing answers: 40 s and Ray's warnings on three more lines
    ("127.0.0.1:1", "--address 127.0.0.1:1: nothing answers at 127.0.0.1:1"),
    ("ray://127.0.0.1:1", "--address ray://127.0.0.1:1: nothing answers at 127.0.0.1:1"),
    (f"http://u:{SECRET}@127.0.0.1:1", "cannot reach the Ray cluster at 'http://u:***@127"),
])
@pytest.mark.parametrize("command", ["submit", "status"])
def test_cli_refuses_a_dashboard_address_it_cannot_use(address: str, want: str, command: str,
                                                       tmp_path: Path) -> None:
    (tmp_path / "grid.yaml").write_text(HEAD)
    what = "grid.yaml" if command == "submit" else "llem-job-1"
    r, took = _cli(tmp_path, command, what, "--address", address)
    _one_line(r, want)
    assert took < 15, took
    assert sorted(os.listdir(tmp_path)) == ["grid.yaml"]


@pytest.mark.parametrize(("head", "body", "want"), [
    # the endpoint backend without its section: every job failed after Ray started
    ("name: t\nmodels: [m]\nbackends: [endpoint]\n", "",
     r":3: 'backends\.0': backend 'endpoint' has no endpoint: section, and "
     r"endpoint\.base_url: the server's URL is required"),
    # the endpoint without mode: server (or with mode: [offline, server] beside another
    # backend): every offline job failed after Ray started, "runs in server mode only"
    ("name: t\nmodels: [m]\nbackends: [endpoint]\n", "endpoint: {base_url: 'http://h:1'}\n",
     r":3: 'backends\.0': backend 'endpoint' runs in server mode only \(it sends requests "
     r"to a server that already runs\): its points here have no mode: server"),
    ("name: t\nmodels: [llem:tiny]\nbackends: [noop, endpoint]\n",
     "endpoint: {base_url: 'http://h:1'}\nserver: {rate: 2, requests: 8}\nper_backend:\n"
     "  endpoint:\n    mode: [offline, server]\n",
     r":8: 'per_backend\.endpoint\.mode\.0': backend 'endpoint' runs in server mode only"),
    # a blank accelerator type: no constraint at all, or (a space) never placed
    (HEAD, "resources: {accelerator_type: ' '}\n",
     r":4: 'resources\.accelerator_type': is empty: give a value, or remove the key"),
])
def test_cli_refuses_settings_a_run_would_fail_on(head: str, body: str, want: str,
                                                  tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(head + body)
    r, _ = _cli(tmp_path, "run", str(grid), "--store", "{d}/store")
    assert_one_line_error(r, grid, want)
    assert sorted(os.listdir(tmp_path)) == ["grid.yaml"]


@pytest.mark.parametrize("args", [
    ["doctor", "--quick", "--address", f"ray://u:{SECRET}@127.0.0.1:1"],
    ["doctor", "--quick", "--json", "--address", f"u:{SECRET}@127.0.0.1:1"],
])
def test_doctor_never_shows_the_password_of_an_address(args: list[str], tmp_path: Path) -> None:
    r, _ = _cli(tmp_path, *args)  # the cluster row showed it, in the table and in JSON
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert r.returncode == 1, r.stderr  # a failed check, reported
    assert "u:***@127.0.0.1:1" in r.stdout, r.stdout
    assert SECRET not in r.stdout + r.stderr


def test_query_refuses_a_sql_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "grid.yaml").write_text(HEAD)
    (tmp_path / "q.sql").write_bytes(b"SELECT 1\n-- latin-1\nSELECT 'caf\xe9'\n")
    r, _ = _cli(tmp_path, "query", "q.sql", "--store", "{d}/st")  # 'caf\ufffd': matched nothing
    _one_line(r, "error: SQL file q.sql:3 is not UTF-8 text (byte 0xe9): save it as UTF-8")
    assert sorted(os.listdir(tmp_path)) == ["grid.yaml", "q.sql"]


def test_a_one_point_run_of_the_endpoint_backend_needs_its_url(tmp_path: Path) -> None:
    (tmp_path / "grid.yaml").write_text(HEAD)
    r, _ = _cli(tmp_path, "run", "--model", "m", "--backend", "endpoint", "--store", "{d}/st")
    _one_line(r, "error: --backend 'endpoint': backend 'endpoint' has no endpoint: "
                 "section, and endpoint.base_url: the server's URL is required")
    assert sorted(os.listdir(tmp_path)) == ["grid.yaml"]  # no Ray, no store


def test_query_json_is_json_whatever_the_numbers(tmp_path: Path) -> None:
    (tmp_path / "st" / "runs").mkdir(parents=True)  # a store with nothing in it yet
    r, _ = _cli(tmp_path, "query", "SELECT 0.0 / 0 AS x, ['inf'::double, 1.5] AS y, "
                "{{'a': '-inf'::double}} AS z", "--format", "json", "--store", "{d}/st")
    assert r.returncode == 0, r.stderr

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")  # printed NaN and Infinity before

    assert json.loads(r.stdout, parse_constant=refuse) == [
        {"x": None, "y": [None, 1.5], "z": {"a": None}}]


@pytest.mark.parametrize("folder", ["/proc/llem-tiny", "/sys/llem-tiny"])
def test_tiny_model_into_a_folder_it_cannot_write(folder: str, tmp_path: Path) -> None:
    r, _ = _cli(tmp_path, "tiny-model", folder)  # was a raw FileNotFoundError traceback
    _one_line(r, f"error: tiny-model {folder}: cannot write there (")
    assert os.listdir(tmp_path) == []
