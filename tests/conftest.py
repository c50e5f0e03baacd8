"""Shared fixtures: a private llem cache (tiny model built once), a local Ray with declared
GPUs, a `ray start --head` of its own, the vLLM CPU environment. Helpers live in
tests/support/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.ray_head import ray_head

# Ray reads RAY_AUTH_MODE once per process and caches it: a module that switched it for its
# own local cluster made every later in-process ray.init fail ("Authentication token is
# missing") depending on test order. One mode for this pytest process's own Ray clusters;
# CLI subprocesses (run_cli) still get Ray's default unless a test asks otherwise.
os.environ["RAY_AUTH_MODE"] = "disabled"


@pytest.fixture(scope="session")
def llem_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LLEM_CACHE for this test session: the tiny model is built here, once."""
    cache = tmp_path_factory.mktemp("llem-cache")
    os.environ["LLEM_CACHE"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    return cache


@pytest.fixture(scope="session")
def tiny_model(llem_cache: Path) -> Path:
    from llem.models.builtin import resolve_model

    return Path(resolve_model("llem:tiny"))


@pytest.fixture(scope="module")
def ray_gpus(llem_cache: Path):
    """A real local Ray with 2 declared GPUs (this machine has none: NVML is absent)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=4, num_gpus=2, include_dashboard=False, namespace="llem",
             logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The vLLM env's python, built by `llem env build vllm --variant cpu` as a user would.

    The venv lives in ~/.cache/llem/envs (outside the checkout), keyed by the hash of
    jobs/vllm/requirements-cpu.txt and the build steps: the first run on a machine builds it
    (about 2 minutes, 3.8 GB), every later run and clone reuses it in well under a second.
    """
    # pip, the installer this venv was measured with (uv is also installed for the uv-kind test)
    proc = run_cli("env", "build", "vllm", "--variant", "cpu", "--tool", "pip", timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory):
    """A `ray start --head` of its own (tests.support.ray_head): dashboard address and env."""
    with ray_head(tmp_path_factory.mktemp("ray")) as h:
        yield h.dashboard, h.env
