"""Secrets: a planted credential reaches the worker and appears in no output: not in run's
stdout/stderr (with --verbose tracebacks), the Parquet store, export/report output, the
embedded Ray's log files, nor a grid error message."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from llem.credentials import collect, looks_secret, read_secrets_file, redact, secret_env_name
from llem.errors import UserError
from tests.support.cli import assert_one_error_line, run_cli
from tests.support.faults import HF_SHAPED, PLANTED, grep_tree
from tests.support.paths import BAD_GRIDS as BAD

# Not shaped like any known token: only the exact-value mask can hide it.


def test_collect_from_env_and_files(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(PLANTED + "\n")
    secrets = tmp_path / "secrets.env"
    secrets.write_text("# keys\nexport WANDB_API_KEY='wandb-planted-123456'\n"
                       "CUSTOM_KEY=abc12345xyz\n")
    found = collect({"HF_TOKEN_PATH": str(token_file), "LLEM_SECRETS_FILE": str(secrets),
                     "NGC_API_KEY": "nvapi-ngc-planted-0001", "PATH": "/usr/bin"})
    assert found == {"HF_TOKEN": PLANTED, "WANDB_API_KEY": "wandb-planted-123456",
                     "CUSTOM_KEY": "abc12345xyz", "NGC_API_KEY": "nvapi-ngc-planted-0001"}
    text = f"401 for {PLANTED} and abc12345xyz; also {HF_SHAPED}; short ab"
    assert redact(text) == "401 for *** and ***; also ***; short ab"


def test_malformed_secrets_file_does_not_show_the_line(tmp_path: Path) -> None:
    f = tmp_path / "s.env"
    f.write_text(f"GOOD=1\n{PLANTED}\n")
    with pytest.raises(UserError) as err:
        read_secrets_file(f)
    assert ":2: expected KEY=VALUE" in str(err.value) and PLANTED not in str(err.value)


def test_what_counts_as_a_credential_in_a_grid() -> None:
    assert looks_secret("transformers.token", "x1")
    assert looks_secret("hf_token", "abc")
    assert looks_secret("note", HF_SHAPED)
    assert not looks_secret("pad_token", "<pad>")
    assert not looks_secret("use_auth_token", True)  # type: ignore[arg-type]
    assert not looks_secret("max_new_tokens", "64")


@pytest.mark.parametrize("name", ["token_in_engine_args.yaml", "token_shaped_value.yaml",
                                  "cred_token_as_key.yaml", "cred_password_in_generate.yaml"])
def test_grid_with_a_token_is_refused_without_echoing_it(name: str, tmp_path: Path) -> None:
    r = run_cli("run", str(BAD / name), "--store", str(tmp_path / "s"), timeout=60)
    assert r.returncode == 2 and "looks like a credential" in r.stderr, r.stderr
    assert HF_SHAPED not in r.stderr + r.stdout and "hunter2" not in r.stderr + r.stdout
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("name", sorted(p.name for p in BAD.glob("cred_*.yaml")))
def test_no_credential_file_of_the_corpus_is_echoed(name: str, tmp_path: Path) -> None:
    """Keys, !!binary values and keys, env var names on the credential list: refused (exit
    2, nothing stored) and no value shown, however it was written."""
    text = (BAD / name).read_text()
    planted = [HF_SHAPED, "hunter2", "not-shaped-like-a-token", "wJalrXUtnFEMI"]
    planted += [w for w in text.split() if len(w) > 16 and w.rstrip("=").isalnum()]  # base64
    r = run_cli("run", str(BAD / name), "--store", str(tmp_path / "s"), "--verbose",
                timeout=60)
    assert r.returncode == 2 and "credential" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    for value in planted:
        assert value not in r.stderr + r.stdout, value
    assert not (tmp_path / "s").exists()


def test_credential_env_var_names() -> None:
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "X_API_KEY",
                 "SERVICE_PASSWORD", "client_secret", "GITHUB_TOKEN"):
        assert secret_env_name(name), name
    for name in ("TOKENIZERS_PARALLELISM", "HF_HUB_DISABLE_IMPLICIT_TOKEN", "HF_HOME",
                 "CUDA_VISIBLE_DEVICES", "MAX_TOKENS"):
        assert not secret_env_name(name), name


USER_ONLY = "PlantedUserOnlyTok1234567"
GRID = "name: t\nmodels: [llem:tiny]\nbackends: [noop]\n"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("args", "env", "want"), [
    (["status", "x", "--address", "http://{t}@127.0.0.1:{p}"], {}, "'http://***@127.0.0.1:"),
    (["submit", "{g}", "--address", "http://{t}@127.0.0.1:{p}"], {}, "'http://***@127.0.0.1:"),
    (["logs", "x", "--address", "http://:{t}@127.0.0.1:{p}"], {}, "'http://:***@127.0.0.1:"),
    (["stop", "x", "--address", "http://127.0.0.1:{p}/?apikey={t}"], {}, "/?apikey=***'"),
    (["run", "{g}", "--dry-run", "--store", "foo://{t}@bucket/x"], {},
     "cannot open store 'foo://***@bucket/x'"),
    (["run", "{g}", "--dry-run", "--address", "ray://{t}@127.0.0.1:{p}"], {},
     "--address 'ray://***@127.0.0.1:"),
    (["run", "{g}", "--dry-run"], {"RAY_ADDRESS": "{t}@127.0.0.1:{p}"},
     "RAY_ADDRESS '***@127.0.0.1:"),
    (["run", "{g}", "--dry-run"], {"RAY_ADDRESS": "Planted%40{t}@127.0.0.1:{p}"},
     "RAY_ADDRESS '***@127.0.0.1:"),
])
def test_a_token_written_as_a_url_user_is_never_shown(args: list[str], env: dict[str, str],
                                                      want: str, tmp_path: Path) -> None:
    """A token as a URL's user (no password), a password alone, a token in the query: one
    error line, the value masked (only `user:pw@` was)."""
    (tmp_path / "grid.yaml").write_text(GRID)
    fill = {"t": USER_ONLY, "p": _closed_port(), "g": str(tmp_path / "grid.yaml")}
    r = run_cli(*(a.format(**fill) for a in args), cwd=tmp_path, timeout=60,
                env={k: v.format(**fill) for k, v in env.items()})
    assert_one_error_line(r, want, unseen=USER_ONLY)
    assert sorted(os.listdir(tmp_path)) == ["grid.yaml"]


@pytest.mark.parametrize("model", [f"https://u:{USER_ONLY}@h/x", f"https://{USER_ONLY}@h/x"])
@pytest.mark.parametrize("with_grid", [True, False])
def test_a_credential_from_a_flag_names_the_flag(model: str, with_grid: bool,
                                                 tmp_path: Path) -> None:
    """--model with a URL's credential: refused as the grid's would be, and the message says
    it came from the --model flag (it said "from grid files")."""
    (tmp_path / "grid.yaml").write_text(GRID)
    grid = [str(tmp_path / "grid.yaml")] if with_grid else []
    r = run_cli("run", *grid, "--model", model, "--dry-run", cwd=tmp_path, timeout=60)
    assert_one_error_line(r, "looks like a credential; llem does not take credentials from "
                          "the --model flag", unseen=USER_ONLY)
    assert "grid file" not in r.stderr


def test_a_token_as_a_url_user_in_a_grid_is_refused(tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"name: t\nmodels: ['https://{USER_ONLY}@h/org/m']\nbackends: [noop]\n")
    r = run_cli("run", str(grid), "--dry-run", cwd=tmp_path, timeout=60)
    assert_one_error_line(r, ":2: 'models.0': looks like a credential; llem does not take "
                          "credentials from grid files", unseen=USER_ONLY)


@pytest.mark.slow
def test_planted_secret_never_appears(llem_cache: Path, tmp_path: Path) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text("""
name: secretive
models: [m]
backends: [noop]
grid:
  batch_size: [1, 2]
  generate: [{}, {fail_env: HF_TOKEN}]
""")
    store = tmp_path / "store"
    ray_tmp = Path(tempfile.mkdtemp(prefix="lr", dir="/tmp"))  # short: Ray's socket paths
    env = {"HF_TOKEN": PLANTED, "RAY_TMPDIR": str(ray_tmp)}
    try:
        r = run_cli("run", str(grid), "--store", str(store), "--verbose", env=env, timeout=300)
        outputs = r.stdout + r.stderr
        # the failing jobs quoted the worker's HF_TOKEN: it arrived, and was masked
        assert "auth failed with ***" in outputs, outputs[-3000:]
        rows = run_cli("query", "SELECT status, error FROM runs ORDER BY ALL", "--store",
                       str(store), "--format", "json", env=env)
        assert rows.stdout.count('"failed"') == 2 and "auth failed with ***" in rows.stdout
        for fmt in ("csv", "jsonl"):
            out = tmp_path / f"export.{fmt}"
            e = run_cli("export", "secretive", "--format", fmt, "--store", str(store), "-o",
                        str(out), env=env)
            assert e.returncode == 0, e.stderr
            outputs += e.stdout + e.stderr + out.read_text()
            assert "auth failed with ***" in out.read_text()
        rep = run_cli("report", "secretive", "--store", str(store), "-o",
                      str(tmp_path / "report.html"), env=env)
        assert rep.returncode == 0, rep.stderr[-2000:]
        outputs += rows.stdout + rows.stderr + rep.stdout + rep.stderr
        assert PLANTED not in outputs
        assert grep_tree(store, PLANTED) == []
        assert grep_tree(tmp_path, PLANTED) == []
        logs = list(ray_tmp.rglob("*.log")) + list(ray_tmp.rglob("*.out"))
        assert logs, "the embedded Ray wrote no logs where expected"
        assert grep_tree(ray_tmp, PLANTED) == []
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert os.environ.get("HF_TOKEN") != PLANTED


@pytest.mark.slow
def test_submit_sends_no_credential(head, tmp_path: Path,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    """`llem submit` with a token in its environment: not in the job's entrypoint,
    runtime_env, metadata or logs, nor anywhere under the head's temp dir; named (not
    shown) in a note."""
    from ray.job_submission import JobSubmissionClient

    address, _ = head
    grid_dir = tmp_path / "grid"
    grid_dir.mkdir()
    (grid_dir / "g.yaml").write_text("name: sub\nmodels: [m]\nbackends: [noop]\n"
                                     "grid: {batch_size: 1, max_new_tokens: 2}\n")
    r = run_cli("submit", str(grid_dir / "g.yaml"), "--address", address, "--store",
                str(tmp_path / "store"), "--wait",
                env={"RAY_AUTH_MODE": "disabled", "HF_TOKEN": PLANTED}, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "not sent with the job: HF_TOKEN" in r.stderr
    assert PLANTED not in r.stdout + r.stderr
    client = JobSubmissionClient(address)
    jobs = [j for j in client.list_jobs() if (j.submission_id or "").startswith("llem-g-")]
    assert jobs
    for j in jobs:
        assert PLANTED not in repr(j)
        assert PLANTED not in client.get_job_logs(j.submission_id)
    for base in tmp_path_factory.getbasetemp().glob("ray*"):
        assert grep_tree(base, PLANTED) == []
