"""The `pip` and `uv` kinds for real: Ray's own runtime_env installs a package for the worker.

A campaign runs through the CLI with `environments: {noop: {kind: pip|uv, packages: [...]}}`.
The package is a wheel written here (no network): Ray builds a virtualenv on top of the
driver's environment, installs the wheel into it (with pip, or with the uv it finds in the
driver's environment: uv is a dev dependency) and starts the worker there. The result
rows show the worker's interpreter, and the package is importable there and not in the
driver. vLLM itself is not installed this way in the tests (minutes, GBs, and its CPU build
needs an uninstall step that Ray's pip cannot run: see jobs/vllm/README.md).
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

import pytest

from llem.store.query import run_sql
from llem.store.store import Store
from tests.support.cli import run_cli

pytestmark = pytest.mark.slow


def make_wheel(folder: Path, name: str = "llem_env_probe", version: str = "0.1") -> Path:
    """A minimal pure-Python wheel (PEP 427), built without setuptools or an index."""
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": "MARK = 'installed by ray runtime_env pip'\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: llem-tests\n"
                              "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest())
        record.append(f"{path},sha256={digest.rstrip(b'=').decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return wheel


@pytest.mark.parametrize("kind", ["pip", "uv"])
def test_kind_runs_the_worker_in_rays_virtualenv(kind: str, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"""
name: {kind}-kind
models: [none]
backends: [noop]
grid: {{batch_size: 2, max_new_tokens: 4, streaming: [false, true]}}
noop: {{token_s: 0.001}}
environments:
  noop: {{kind: {kind}, packages: ["{wheel}"]}}
dataset: {{num_prompts: 2}}
measurement: {{warmup_requests: 0}}
""")
    # these reach Ray's pip/uv through the local Ray's agent: no network needed or used
    proc = run_cli("run", str(grid), "--store", str(tmp_path / "store"), "-q", timeout=600,
                   env={"PIP_NO_INDEX": "1", "UV_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = run_sql(Store(tmp_path / "store"), "SELECT status, env_kind, python_executable "
                   "FROM runs ORDER BY streaming").to_pylist()
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert {r["env_kind"] for r in rows} == {kind}
    exe = Path(rows[0]["python_executable"])
    assert exe != Path(sys.executable) and "runtime_resources" in exe.parts
    assert kind in exe.parts  # Ray's pip/uv virtualenv, not the driver's venv
    # the wheel is in that virtualenv, not in the driver's environment
    site = list(exe.parent.parent.glob("lib/python*/site-packages/llem_env_probe"))
    assert site, exe
    with pytest.raises(ImportError):
        __import__("llem_env_probe")
