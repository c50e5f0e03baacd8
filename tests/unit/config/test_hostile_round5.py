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


# --- `--address auto` with no cluster; dashboard addresses (llem.cli.addresses) -----------------


@pytest.fixture
def no_ray_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine where no Ray runs: an empty process table, Ray's temp folder empty."""
    from llem.cli import addresses

    (tmp_path / "proc").mkdir()
    (tmp_path / "ray").mkdir()
    monkeypatch.setattr(addresses, "PROC", tmp_path / "proc")
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    return tmp_path


def test_auto_with_no_cluster_is_one_line(no_ray_here: Path) -> None:
    from llem.cli.addresses import check_address

    with pytest.raises(UserError, match=r"^RAY_ADDRESS auto: no Ray cluster runs on this "
                                        r"machine \(`ray start --head` starts one\)"):
        check_address("auto", "RAY_ADDRESS")  # was an internal ConnectionError from ray.init


def test_auto_is_the_cluster_ray_start_began_and_must_answer(no_ray_here: Path) -> None:
    from llem.cli.addresses import check_address, find_auto

    (no_ray_here / "ray" / "ray_current_cluster").write_text("127.0.0.1:1\n")
    assert find_auto("--address") == "127.0.0.1:1"
    with pytest.raises(UserError, match=r"--address 127\.0\.0\.1:1: nothing answers"):
        check_address("auto", "--address")


def test_auto_is_left_to_ray_where_a_ray_process_runs(no_ray_here: Path) -> None:
    from llem.cli.addresses import check_address

    (no_ray_here / "proc" / "4242").mkdir()
    (no_ray_here / "proc" / "4242" / "cmdline").write_bytes(
        b"raylet\x00--gcs-address=10.0.0.5:6379\x00")
    check_address("auto", "--address")  # Ray picks the running cluster itself


@pytest.mark.parametrize(("address", "want"), [
    (" http://h:8265", "is not a dashboard address"),
    ("http://h:8265\t", "is not a dashboard address"),
    ("gopher://h:70", "is not a dashboard address"),
    ("http://h:0x50", "is not a dashboard address"),
    ("http://:8265", "is not a dashboard address"),
    ("https://h_h:8265", "is not a dashboard address"),
    ("http://[::1:8265", "is not a dashboard address"),
    ("::1:6379", "an IPv6 address goes in brackets"),
    ("http://127.0.0.1:1", "cannot reach the Ray cluster at 'http://127.0.0.1:1' (--address)"),
    ("https://127.0.0.1:1/", "nothing answers at 127.0.0.1:1"),
    ("http://[::1]:1", "nothing answers at ::1:1"),
])
def test_dashboard_addresses_that_cannot_be_used(address: str, want: str) -> None:
    from llem.cli.addresses import check_dashboard

    with pytest.raises(UserError) as exc:
        check_dashboard(address, "--address")
    assert want in str(exc.value), str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_dashboard_that_answers_passes() -> None:
    import socket

    from llem.cli.addresses import check_dashboard

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        for address in (f"http://127.0.0.1:{port}", f"http://localhost:{port}/",
                        f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
            check_dashboard(address, "--address")


# --- empty option values (llem.cli.values) ---------------------------------------------------


@pytest.mark.parametrize(("args", "want"), [
    (["report", "c", "--job", ""], "--job is empty: give a value, or leave --job out"),
    (["report", "c", "-o", "  "], "--output is empty"),
    (["export", "c", "--output="], "--output is empty"),
    (["run", " "], "GRID is empty: give a path"),
])
def test_empty_values_are_refused_before_the_command(args: list[str], want: str) -> None:
    import click

    from llem.cli import cli

    ctx = click.Context(cli)
    with pytest.raises(UserError, match=want):
        cli.resolve_command(ctx, args)


@pytest.mark.parametrize("args", [["query", ""], ["compare", "", "--by", "batch_size"],
                                  ["run", "g.yaml", "--dry-run"], ["report", "c", "--bogus"],
                                  ["export", "c", "-o"]])
def test_what_values_leaves_to_the_command(args: list[str]) -> None:
    import click

    from llem.cli import cli

    cli.resolve_command(click.Context(cli), args)  # the SQL's own message; click's own


# --- a backend listed without the section it needs -------------------------------------------


@pytest.mark.parametrize(("head", "want"), [
    ("name: t\nmodels: [org/m]\nbackends: [noop, endpoint]\n",  # every job failed, after Ray
     "grid.yaml:3: 'backends.1': backend 'endpoint' has no endpoint: section, and "
     "endpoint.base_url: the server's URL is required"),
    ("name: t\nmodels: [org/m]\nbackends: [noop]\nexperiments: [{backend: endpoint}]\n",
     "grid.yaml:4: 'experiments': backend 'endpoint' has no endpoint: section"),
])
def test_a_backend_without_the_section_it_needs(head: str, want: str) -> None:
    assert want in error_of("", head=head)


@pytest.mark.parametrize("head", [
    "name: t\nmodels: [llem:tiny]\nbackends: [transformers, noop]\n",
    "name: t\nmodels: [m]\nbackends: [endpoint]\nendpoint: {base_url: 'http://h:8000'}\n"
    "grid: {mode: server}\nserver: {rate: 2, requests: 10}\n",
])
def test_backends_that_need_no_section_pass(head: str, tmp_path: Path) -> None:
    from llem.config.checks import check_backend_options

    check_backend_options(load("", head=head), tmp_path)


# --- text settings left blank ----------------------------------------------------------------


@pytest.mark.parametrize(("body", "want"), [
    ("resources: {accelerator_type: ''}\n", ":4: 'resources.accelerator_type': is empty"),
    ("resources: {accelerator_type: ' '}\n", ":4: 'resources.accelerator_type': is empty"),
    ("resources: {accelerator_type: [H100, '']}\n", ":4: 'resources.accelerator_type.1': is "
                                                    "empty"),
    ("dataset: {source: hf, path: org/ds, column: ''}\n", ":4: 'dataset.column': is empty"),
    ("dataset: {source: hf, path: org/ds, split: '  '}\n", ":4: 'dataset.split': is empty"),
])
def test_a_text_setting_left_blank(body: str, want: str) -> None:
    msg = error_of(body)  # '' was "no accelerator", "auto-detect the column", split ''
    assert want + ": give a value, or remove the key for the default" in msg, msg


def test_text_settings_with_values_pass() -> None:
    load("resources: {accelerator_type: H100}\n")
    load("dataset: {source: hf, path: org/ds, column: question, split: 'train[:10]'}\n")


# --- a field llem sets itself -------------------------------------------------------------------

SERVED = "name: t\nmodels: [llem:tiny]\nbackends: [transformers]\ngrid: {mode: server}\n"


@pytest.mark.parametrize("server", [
    "{profile: sweep, sweep_level: 3, requests: 10}",  # ran alone, without levels 0 and n + 1
    "{profile: sweep, sweep_levels: 2, sweep_level: 10, requests: 10}",
    "{profile: poisson, rate: 1, sweep_level: 0, requests: 10}",  # ignored
])
def test_the_sweep_level_is_llems_own(server: str) -> None:
    msg = error_of(f"server: {server}\n", head=SERVED)
    assert "'server.sweep_level': server.sweep_level is set by llem as it expands a sweep" \
        in msg and "did you mean 'server.sweep_levels'?" in msg, msg


def test_a_sweep_of_levels_passes() -> None:
    load("server: {profile: sweep, sweep_levels: 3, requests: 10}\n", head=SERVED)


# --- a large file of many keys or axes loads in seconds ----------------------------------------


@pytest.mark.parametrize("body", [
    "noop:\n" + "".join(f"  k{i}: 1\n" for i in range(30_000)),  # was minutes: each key
    "grid:\n  generate:\n" + "".join(f"    k{i}: 1\n" for i in range(30_000)),  # validated
    "grid:\n" + "".join(f"  generate.k{i}: [1]\n" for i in range(20_000)),  # with all before;
])                                                                   # axes compared pairwise
def test_many_keys_or_axes_load_in_linear_time(body: str) -> None:
    import time

    t0 = time.monotonic()
    load(body)
    assert time.monotonic() - t0 < 30


def test_what_the_faster_checks_still_find() -> None:
    assert "'noop.a.b' reaches inside 'noop.a'" in error_of("noop:\n  a: 1\n  a.b: 2\n")
    assert "'noop.a.b' reaches inside 'noop.a'" in error_of("noop:\n  a.b: 2\n  a: 1\n")
    msg = error_of("grid:\n  g1: [{batch_size: 1}]\n  g2: [{top_k: 1}]\n"
                   "  g3: [{top_k: 2, batch_size: 2}]\n")
    assert ":7: 'grid.g3': 'batch_size' is also set by 'g1' on line 5" in msg, msg
