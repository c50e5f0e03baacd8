"""Hostile input, round seven, through the CLI as a user runs it (`llem run --dry-run`, one
subprocess each, no Ray started): values the grid accepted that could not work, that no
point used, or that one mistake reported twice. Each: exactly one `error:` line naming the
file, line and key, exit 2, nothing written."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.bad_grids import assert_one_line_error
from tests.support.paths import LLEM

NO_RAY = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
HEAD = "name: t\nmodels: [llem:tiny]\nbackends: [transformers]\n"
SERVER = "server: {profile: poisson, rate: 1, requests: 4}\n"


def _dry(tmp_path: Path, body: str, head: str = HEAD) -> tuple[subprocess.CompletedProcess[str],
                                                                Path]:
    grid = tmp_path / "grid.yaml"
    grid.write_text(head + body)
    r = subprocess.run([*LLEM, "run", str(grid), "--dry-run", "--store", str(tmp_path / "st")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120, env=NO_RAY,
                       check=False)
    return r, grid


@pytest.mark.parametrize(("body", "want"), [
    # transformers' from_pretrained refused them at model load, after Ray started
    ("transformers: {attn_implementation: turbo}\n",
     r":4: 'transformers\.attn_implementation': unknown attention implementation 'turbo'"),
    ("transformers: {attn_implementation: 5}\n",
     r":4: 'transformers\.attn_implementation': unknown attention implementation 5"),
    # device_map passes through and wins: a device past the job's GPUs failed in CUDA; a
    # map's "" key (the whole model) was "a key in this path is empty"
    ("resources: {gpus_per_job: 1}\ntransformers: {device_map: {'': 'cuda:7'}}\n",
     r":5: 'transformers\.device_map': '': 'cuda:7' is past this job's GPUs \(1: Ray gives "
     r"each job its own, numbered from 0\)"),
    ("transformers: {device_map: sequential}\n",
     r":4: 'transformers\.device_map': sequential places the model on GPUs and this job has "
     r"none"),
    # a number for the endpoint's URL: "the server's URL is required", though one was given
    ("endpoint: {base_url: 8000}\ngrid: {mode: server}\n" + SERVER,
     r":4: 'endpoint\.base_url': must be the server's URL as text"),
    # generate values passed through untouched: recorded, then ignored or failing mid-run
    ("grid: {generate.num_beams: -2}\n",
     r":4: 'grid\.generate\.num_beams': must be a whole number of at least 1 \(got -2\)"),
    ("grid: {generate.num_beams: [1, 2, 0]}\n",  # every value of an axis is checked
     r":4: 'grid\.generate\.num_beams\.2': must be a whole number of at least 1 \(got 0\)"),
    ("grid: {generate.stop_strings: [[[a]]]}\n",
     r":4: 'grid\.generate\.stop_strings\.0': must be a string or a list of strings"),
    ("grid: {generate.stop_strings: [stop, 5]}\n",
     r":4: 'grid\.generate\.stop_strings\.1': must be a string or a list of strings \(got 5\)"),
    ("grid:\n  generate:\n    typical_p: 1.5\n",
     r":6: 'grid\.generate\.typical_p': must be a number from 0 to 1 \(got 1\.5\)"),
    ("per_backend: {transformers: {generate.use_cache: 3}}\n",
     r":4: 'per_backend\.transformers\.generate\.use_cache': must be true or false"),
    # settings no point uses, each row labelled with them
    ("measurement: {arrival: constant}\n",
     r":4: 'measurement\.arrival': never used: no point it reaches sets "
     r"measurement\.request_rate"),
    ("measurement: {arrival_seed: 3, request_rate: 2, arrival: constant}\n",
     r":4: 'measurement\.arrival_seed': never used: no point it reaches draws poisson gaps"),
    # include/exclude rules that match nothing: the points ran as if they were not there
    ("grid: {batch_size: [1, 2]}\nexclude: [{batch_size: 4}]\n",
     r":5: 'exclude\.0\.batch_size': exclude rule 1 asks for batch_size 4, which no point of "
     r"this grid has \(its values here: 1, 2\)"),
    ("grid: {batch_size: [1, 2]}\ninclude: [{backend: vllm}]\n",
     r":5: 'include\.0\.backend': include rule 1 asks for backend vllm"),
    ("grid: {batch_size: [1, 2]}\nexclude: [{streaming: false, batch_size: 2}]\n",
     r":5: 'exclude\.0\.streaming': exclude rule 1 asks for streaming, which this grid never "
     r"sets"),
    # a variant no environment has, now with its line (it had none)
    ("environments: {transformers: {variant: nope}}\n",
     r":4: 'environments\.transformers\.variant': backend 'transformers' has no environment "
     r"variant 'nope' \(known: cuda, cpu\)"),
    # a top-level key under grid: or in an experiment became a named group that did the
    # opposite (`exclude: [{streaming: true}]` made every point stream)
    ("grid: {batch_size: [1, 2], exclude: [{streaming: true}]}\n",
     r":4: 'grid\.exclude': 'exclude' is a key of the file's top level, not a grid parameter"),
    ("grid: {cycles: [{streaming: true}, {}]}\n",
     r":4: 'grid\.cycles': 'cycles' is a key of the file's top level"),
    ("experiments:\n  - {backend: transformers, include: [{batch_size: 1}]}\n",
     r":5: 'experiments\.0\.include': 'include' is a key of the file's top level"),
    # vllm serve flags the launcher sets itself: refused in the worker, after Ray started
    ("vllm: {port: 8001}\ngrid: {mode: server}\n" + SERVER,
     r":4: 'vllm\.port': 'port' is set by the launcher, not by engine args"),
    ("vllm: {uds: /tmp/x.sock}\ngrid: {mode: server}\n" + SERVER,
     r":4: 'vllm\.uds': 'uds' is set by the launcher"),
    # the calibration rows of campaign x are stored as x.calibration
    ("", r":1: 'name': campaign name 'x\.calibration' ends in '\.calibration'"),
])
def test_a_value_that_could_not_work_or_is_never_used_is_refused(body: str, want: str,
                                                                 tmp_path: Path) -> None:
    head = HEAD.replace("name: t", "name: x.calibration") if not body else \
        HEAD.replace("[transformers]", "[endpoint]") if "endpoint:" in body else \
        HEAD.replace("[transformers]", "[vllm]") if "vllm:" in body else HEAD
    r, grid = _dry(tmp_path, body, head)
    assert_one_line_error(r, grid, want)
    assert not (tmp_path / "st").exists()


@pytest.mark.parametrize(("body", "want"), [
    # one mistake, one line: the map's two keys each gave the same message
    ("measurement: {cloud: {provider: gcpx, region: europe-west1}}\n",
     r":4: 'measurement\.cloud': cloud must be \{provider: gcp\|aws\|azure"),
    # a mode that is no mode: the server flags and server: section it would have used were
    # each refused too
    ("grid: {mode: [offline, served]}\ntransformers: {cb_num_blocks: 4}\n" + SERVER,
     r":4: 'grid\.mode\.1': must be 'offline' or 'server' \(got 'served'\)"),
])
def test_one_mistake_is_one_line(body: str, want: str, tmp_path: Path) -> None:
    r, grid = _dry(tmp_path, body)
    assert_one_line_error(r, grid, want)


@pytest.mark.parametrize("body", [
    # a right cloud region could never be set: each key was validated without the other
    "measurement: {cloud: {provider: gcp, region: europe-west1}}\n",
    "measurement:\n  cloud: [{provider: gcp, region: europe-west1}, {provider: aws, region: "
    "us-east-1}]\n",
    "transformers: {attn_implementation: sdpa}\n",
    "resources: {gpus_per_job: 1}\ntransformers: {device_map: {'model.layers.0': 0, lm_head: "
    "cpu}}\n",
    "transformers: {attn_implementation: kernels-community/flash-attn3}\n",
    "grid: {generate.num_beams: [1, 2], generate.stop_strings: [END, [a, b]]}\n",
    # streaming at its default in server mode: no one's mistake (the rows say streaming true)
    "grid: {mode: server, streaming: false}\n" + SERVER,
    "measurement: {arrival: [poisson, constant], request_rate: [null, 2]}\n",
    "grid: {batch_size: [1, 2]}\nexclude: [{batch_size: [2, 4]}]\n",
])
def test_what_works_is_still_accepted(body: str, tmp_path: Path) -> None:
    r, _ = _dry(tmp_path, body)
    assert r.returncode == 0, r.stderr
    assert "dry run of campaign" in r.stdout


def test_arrivals_of_points_that_send_none_are_measured_once(tmp_path: Path) -> None:
    """request_rate null queues all at once: poisson and constant were two jobs of one
    configuration, labelled apart."""
    r, _ = _dry(tmp_path, "measurement: {arrival: [poisson, constant], request_rate: [null, "
                "2], arrival_seed: [1, 2]}\n")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^4 points x 1 cycle", r.stdout, re.M), r.stdout
