"""Import boundaries, enforced by ruff (pyproject.toml) and checked here because CI runs
only the tests: Ray only in llem/scheduler/ (one pattern: any module there), NVML only in
llem/measure/gpu.py, and torch/vllm/tensorrt_llm/transformers never at module level, so the
driver can import every llem module (the backend registry included) without a backend
library. test_envs_campaign.py checks the driver's sys.modules after a real campaign.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import ROOT

RULES = "TID251,TID253"


def _ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--select", RULES,
                           "--no-cache", "--output-format", "concise", *args], cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=120, check=False)


def test_the_package_keeps_its_import_boundaries() -> None:
    proc = _ruff("llem")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("path", "code", "banned"), [
    ("llem/config/probe.py", "import ray\n", "TID251"),
    ("llem/harness/runner.py", "from ray.util import metrics\n", "TID251"),
    ("llem/store/writer.py", "import ray\n", "TID251"),
    ("llem/scheduler/driver.py", "import ray\n", None),
    ("llem/scheduler/worker.py", "import ray\n", None),
    ("llem/scheduler/a_new_module.py", "import ray\n", None),  # the room, not a file list
    ("llem/measure/meter.py", "import pynvml\n", "TID251"),
    ("llem/scheduler/cluster.py", "import pynvml\n", "TID251"),
    ("llem/measure/gpu.py", "import pynvml\n", None),
    ("llem/backends/vllm/backend.py", "import vllm\n", "TID253"),
    ("llem/backends/vllm/backend.py", "from vllm import LLM\n", "TID253"),
    ("llem/backends/tensorrt/backend.py", "import tensorrt_llm\n", "TID253"),
    ("llem/backends/transformers/backend.py", "import torch\n", "TID253"),
    ("llem/models/tiny.py", "from transformers import AutoModel\n", "TID253"),
    # inside a function (imported when the backend loads, in the worker): allowed
    ("llem/backends/vllm/backend.py", "def load():\n    import torch\n    import vllm\n"
     "    return torch, vllm\n", None),
])
def test_ruff_catches_a_crossed_boundary(path: str, code: str, banned: str | None) -> None:
    """The same configuration, fed a one-line module under each file name."""
    proc = _ruff("--stdin-filename", path, "-", stdin=code)
    if banned is None:
        assert proc.returncode == 0, proc.stdout
    else:
        assert proc.returncode == 1 and banned in proc.stdout, proc.stdout + proc.stderr
