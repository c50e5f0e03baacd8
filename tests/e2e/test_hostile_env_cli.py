"""Issue 18, round four, through the CLI as a user runs it (one subprocess each, no Ray): llem's
folder variables and credential files, Ray addresses, an HF dataset the hub cannot serve, one
prompt file spelled twice, outputs that are not files, empty or control-character flags. Each:
exactly one `error:` line, exit 2, no traceback, nothing written, no credential shown."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import assert_one_error_line

HEAD = "name: t\nmodels: [llem:tiny]\nbackends: [noop]\n"
SECRET = "PlantedTokPw0123"


def _llem() -> list[str]:
    script = Path(sys.executable).with_name("llem")
    return [str(script)] if script.exists() else [sys.executable, "-m", "llem"]


def _run(tmp_path: Path, args: list[str], env: dict[str, str | None] | None = None,
         grid: str = HEAD) -> tuple[subprocess.CompletedProcess[str], float]:
    (tmp_path / "grid.yaml").write_text(grid)
    full = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "LLEM_CACHE",
                                                           "LLEM_SECRETS_FILE")}
    for k, v in (env or {}).items():  # None: not set (the session's HF_HUB_OFFLINE=1)
        if v is None:
            full.pop(k, None)
        else:
            full[k] = v.format(d=tmp_path)
    t0 = time.monotonic()
    r = subprocess.run([*_llem(), *(a.format(d=tmp_path) for a in args)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60, env=full, check=False)
    return r, time.monotonic() - t0


def _one_line(r: subprocess.CompletedProcess[str], want: str) -> None:
    assert_one_error_line(r, want, SECRET)


def _setup(tmp_path: Path) -> list[str]:
    (tmp_path / "afile").write_text("x")
    os.mkfifo(tmp_path / "ff")
    os.mkfifo(tmp_path / "ff.sql")
    return sorted(os.listdir(tmp_path))


DRY = ["run", "grid.yaml", "--dry-run", "--store", "{d}/st"]


@pytest.mark.parametrize(("args", "env", "want"), [
    # folder variables (the cache as a file failed the job in the worker)
    (DRY, {"LLEM_CACHE": "{d}/afile"}, "LLEM_CACHE={d}/afile is a file, not a folder"),
    (DRY, {"LLEM_ENVS_DIR": "{d}/afile/envs"}, "which is a file, not a folder"),
    (DRY, {"XDG_CACHE_HOME": "{d}/afile"}, "XDG_CACHE_HOME={d}/afile is a file"),
    (DRY, {"LLEM_JOBS_DIR": "{d}/none"}, "LLEM_JOBS_DIR={d}/none does not exist"),
    (["env", "build", "vllm"], {"LLEM_ENVS_DIR": "{d}/afile"}, "LLEM_ENVS_DIR={d}/afile"),
    # credential files (a FIFO hung the first error message, for ever)
    (DRY, {"LLEM_SECRETS_FILE": "{d}/ff"}, "LLEM_SECRETS_FILE {d}/ff is not a regular file"),
    (["submit", "grid.yaml", "--address", "http://127.0.0.1:1"],
     {"LLEM_SECRETS_FILE": "{d}"}, "LLEM_SECRETS_FILE {d} is not a regular file"),
    (DRY, {"LLEM_SECRETS_FILE": "{d}/afile"}, "expected KEY=VALUE"),
    # addresses: IPv6 literals parsed, a password never shown
    (DRY + ["--address", "::1:6379"], {}, "an IPv6 address goes in brackets"),
    (DRY + ["--address", "[::1]:99999"], {}, "is not a Ray address"),
    (DRY, {"RAY_ADDRESS": f"user:{SECRET}@host:6379"}, "RAY_ADDRESS 'user:***@host:6379'"),
    # flags: empty, control characters, a password in a store without scheme
    (DRY + ["--model", ""], {}, "--model is empty"),
    (["run", "grid.yaml", "--dry-run", "--store", "a\tb"], {}, "holds a control character"),
    (["run", "grid.yaml", "--dry-run", "--store", " st"], {}, "has spaces around it"),
    (DRY + ["--address", " 10.0.0.5:6379"], {}, "is not a Ray address"),
    (["results", "--store", f"user:{SECRET}@host/x"], {}, "a URL with a password but no"),
    (["run", "grid.yaml", "--dry-run", "--store", f"s3://b/x?access_key=AK&secret_key={SECRET}"],
     {}, "s3://b/x?access_key=***&secret_key=***"),
    # click's own refusals are one line too
    (["run", "{d}", "--dry-run"], {}, "is a directory. (see `llem run --help`)"),
    (["tiny-model", "{d}/m", "--init-std", "nan"], {}, "'--init-std': nan is not in (0, 1]"),
    (["tiny-model", "{d}/m", "--heads", "3"], {}, "must be a whole, even number"),
    # empty or odd arguments of the readers (each fell back to a default, or blocked)
    (["query", " ", "--store", "{d}/none"], {}, "the SQL is empty"),
    (["query", "ff.sql", "--store", "{d}/none"], {}, "SQL file ff.sql is not a regular file"),
    (["compare", "t", "--by", "", "--store", "{d}/none"], {}, "--by is empty"),
    (["compare", "t", "--metric", " , ", "--store", "{d}/none"], {}, "--metric is empty"),
    # a store among the devices (as root, runs/ and sessions/ were made in /dev)
    (["run", "grid.yaml", "--dry-run", "--store", "/dev/llem"], {}, "in a kernel or device"),
    # a local model path a backend cannot load (the hub library took it for a repo id)
    (["run", "--model", "./afile", "--gpus", "0", "--dry-run", "--store", "{d}/st"], {},
     "model path {d}/afile is a file, not a model folder"),
    # outputs replaced whole: run as root, -o /dev/null replaced the device with a file
    (["export", "t", "-o", "{d}/ff", "--store", "{d}/none"], {}, "-o {d}/ff is a device, pipe"),
    (["report", "t", "-o", "{d}/ff", "--store", "{d}/none"], {}, "-o {d}/ff is a device, pipe"),
    (["tiny-model", "{d}/ff"], {}, "tiny-model {d}/ff is not a folder"),
])
def test_cli_refuses_what_the_environment_and_flags_get_wrong(
        args: list[str], env: dict[str, str], want: str, tmp_path: Path) -> None:
    before = _setup(tmp_path)
    r, _ = _run(tmp_path, args, env)
    _one_line(r, want.format(d=tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted([*before, "grid.yaml"])
    assert stat.S_ISFIFO((tmp_path / "ff").stat().st_mode)  # not replaced by a file


def test_an_hf_dataset_the_hub_cannot_serve_fails_in_seconds(tmp_path: Path) -> None:
    """Offline, `datasets` retried the hub for ~25 s; a hub that nothing answers for (a
    closed local port as its address) is asked once."""
    env: dict[str, str | None] = {"HF_ENDPOINT": "http://127.0.0.1:1", "HF_HOME": "{d}/hf",
                                  "HF_HUB_OFFLINE": None, "HF_DATASETS_OFFLINE": None}
    r, took = _run(tmp_path, DRY, env, grid=HEAD + "dataset: {source: hf, path: nobody/none}\n")
    _one_line(r, "grid.yaml:4: 'dataset.path': HF dataset 'nobody/none': the Hugging Face hub "
                 "cannot be reached from here")
    assert "HF_HUB_OFFLINE=1" in r.stderr and took < 15, (took, r.stderr)


def test_one_prompt_file_spelled_twice_in_an_axis(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    (d / "p.jsonl").write_text('{"prompt": "hello"}\n')
    (d / "grid.yaml").write_text(HEAD + "dataset: {source: file, path: [p.jsonl, "
                                        "../dir/p.jsonl]}\n")
    r, _ = _run(tmp_path, ["run", "dir/grid.yaml", "--dry-run", "--store", "{d}/st"])
    _one_line(r, "error: dir/grid.yaml:4: 'dataset.path.1': '../dir/p.jsonl' names the same "
                 "file as 'p.jsonl' on line 4")
    assert not (tmp_path / "st").exists()


@pytest.mark.skipif(not Path("/proc/1").is_dir() or os.access("/proc/1", os.W_OK),
                    reason="needs a folder this user cannot write")
def test_a_home_ray_cannot_write_is_refused_before_ray(tmp_path: Path) -> None:
    """ray.init writes ~/.ray: an internal FileNotFoundError after the grid was checked."""
    before = _setup(tmp_path)
    r, _ = _run(tmp_path, ["run", "grid.yaml", "--store", "{d}/st"], {"HOME": "/proc/1"})
    _one_line(r, "HOME=/proc/1 is not writable: Ray, started here, keeps files in ~/.ray")
    assert sorted(os.listdir(tmp_path)) == sorted([*before, "grid.yaml"])
