"""Hostile input, round six, through the CLI as a user runs it (one subprocess each, no Ray
started): server mode's levels and the endpoint backend's settings. Each: exactly one
`error:` line naming the file, line and key, exit 2, quickly, nothing written, no secret
shown (a password in base_url, a key variable's value)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.bad_grids import assert_one_line_error
from tests.support.paths import LLEM

NO_RAY = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # no cluster joined
SECRET = "PlantedR6Pw0123"
HEAD = "name: t\nmodels: [m]\nbackends: [endpoint]\n"


def _run(tmp_path: Path, body: str, env: dict[str, str] | None = None
         ) -> tuple[subprocess.CompletedProcess[str], Path, float]:
    grid = tmp_path / "grid.yaml"
    grid.write_text(HEAD + body)
    t0 = time.monotonic()
    r = subprocess.run([*LLEM, "run", str(grid), "--store", str(tmp_path / "st")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**NO_RAY, **(env or {})}, check=False)
    return r, grid, time.monotonic() - t0


SERVER = "grid: {mode: server}\nserver: {rate: 2, requests: 8}\n"


@pytest.mark.parametrize(("body", "want"), [
    # an unclosed IPv6 bracket: "error: internal error: ValueError: Invalid IPv6 URL"
    ("endpoint: {base_url: 'http://[::1:8000'}\n" + SERVER,
     r":4: 'endpoint\.base_url': is not a URL \(Invalid IPv6 URL\)"),
    # the route llem appends: every request a 404, after Ray started
    ("endpoint: {base_url: 'http://127.0.0.1:8000/v1/chat/completions'}\n" + SERVER,
     r":4: 'endpoint\.base_url': ends with the route /chat/completions, which llem adds"),
    ("endpoint: {base_url: 'http://127.0.0.1:8000?'}\n" + SERVER,
     r":4: 'endpoint\.base_url': must not carry a user, password, query or fragment"),
    # levels the window or the job's timeout cannot hold: ok rows with nothing in them, or
    # a job stopped after an hour
    ("endpoint: {base_url: 'http://h:1'}\ngrid: {mode: server}\n"
     "server: {profile: concurrency, concurrency: 16, requests: 16}\n",
     r":6: 'server\.requests': requests \(16\) must be more than concurrency \(16\)"),
    ("endpoint: {base_url: 'http://h:1'}\ngrid: {mode: server}\nserver:\n  rate: 1\n"
     "  duration_s: 7200\n",
     r":8: 'server\.duration_s': a level takes about 7200 s \(duration_s 7200\), more than "
     r"measurement\.job_timeout_s \(3600 s\)"),
])
def test_cli_refuses_what_every_request_would_fail_on(body: str, want: str,
                                                      tmp_path: Path) -> None:
    r, grid, took = _run(tmp_path, body)
    assert_one_line_error(r, grid, want)
    assert took < 30, took
    assert sorted(os.listdir(tmp_path)) == ["grid.yaml"]  # no store, no Ray files


def test_cli_never_shows_a_password_or_a_key(tmp_path: Path) -> None:
    r, grid, _ = _run(tmp_path, f"endpoint: {{base_url: 'http://u:{SECRET}@h:8000/v1'}}\n"
                      + SERVER)
    assert_one_line_error(r, grid, r":4: 'endpoint\.base_url': looks like a credential")
    assert SECRET not in r.stdout + r.stderr
    r, grid, _ = _run(tmp_path, "endpoint: {base_url: 'http://h:8000', api_key_env: "
                      "LLEM_R6_KEY}\n" + SERVER, env={"LLEM_R6_KEY": f"{SECRET}\n"})
    assert_one_line_error(r, grid, r":4: 'endpoint\.api_key_env': the environment variable "
                          r"LLEM_R6_KEY holds a space, a newline or a control character")
    assert SECRET not in r.stdout + r.stderr
    assert sorted(os.listdir(tmp_path)) == ["grid.yaml"]


def test_cli_refuses_a_key_variable_unset_here_before_ray(tmp_path: Path) -> None:
    """Unset in the shell of a run on this machine, every job failed after Ray started
    ("the API key variable ... is not set"); a cluster's nodes may hold it (--address)."""
    env = {k: v for k, v in NO_RAY.items() if k != "LLEM_R6_UNSET"}
    grid = tmp_path / "grid.yaml"
    grid.write_text(HEAD + "endpoint: {base_url: 'http://127.0.0.1:9', api_key_env: "
                    "LLEM_R6_UNSET}\n" + SERVER)
    r = subprocess.run([*LLEM, "run", str(grid), "--store", str(tmp_path / "st")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
                       check=False)
    assert_one_line_error(r, grid, r":4: 'endpoint\.api_key_env': the environment variable "
                          r"LLEM_R6_UNSET is not set, and the workers of a run on this "
                          r"machine take their environment from here \(export LLEM_R6_UNSET=")
    assert sorted(os.listdir(tmp_path)) == ["grid.yaml"]
