"""`llem tiny-model` with sizes it cannot build: refused from the sizes alone, in one line
that says the size and the limit, before anything is written or allocated; a build that
runs out of memory anyway leaves no lock file, half-built folder or parent folder behind.
Nothing here allocates more than a CLI start does.
"""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path

import pytest

from llem.models import tiny
from llem.models.tiny import build_tiny_model
from tests.support.cli import assert_one_error_line, run_cli
from tests.support.paths import LLEM, ROOT

HUGE = ["--hidden-size", "16384", "--layers", "128", "--heads", "256",
        "--intermediate-size", "65536"]


def test_terabytes_of_weights_are_refused_from_the_sizes(tmp_path: Path) -> None:
    """The tester's command (~550B parameters, 2 TiB in float32): refused at once."""
    r = run_cli("tiny-model", "./big", *HUGE, cwd=tmp_path, timeout=60,
                env={"PYTHONPATH": str(ROOT)})  # this checkout's llem, from another folder
    assert_one_error_line(r, "549.8B parameters (2.0 TiB to initialise); a test model is "
                          "at most 8.0B")
    assert "use smaller sizes" in r.stderr
    assert os.listdir(tmp_path) == []  # no folder, no .big.lock


def test_more_than_this_process_may_use_is_refused(tmp_path: Path) -> None:
    """Under `ulimit -v` 3 GiB, 1B parameters (3.9 GiB in float32) cannot be built: the
    limit is read before torch is imported or a folder made."""
    limit = 3 << 30

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    r = subprocess.run([*LLEM, "tiny-model", "a/b/m", "--hidden-size", "2048", "--layers",
                        "20", "--heads", "16", "--intermediate-size", "5632"], cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                       text=True, timeout=120, preexec_fn=cap, check=False)
    assert_one_error_line(r, "1.0B parameters need about 3.9 GiB of memory to build; this "
                          "process may use")
    assert "ulimit -v" in r.stderr and os.listdir(tmp_path) == []


@pytest.mark.parametrize("exc", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
                 "memory: you tried to allocate 2199023255552 bytes."),
    MemoryError(),
])
def test_an_allocation_failure_is_one_message_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    """What torch raises when the memory is gone after all (another process took it)."""
    def fail(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(tiny, "_build", fail)
    with pytest.raises(ValueError, match=r"ran out of memory building 0\.\dM parameters "
                       r"\(.+\): use smaller sizes"):
        build_tiny_model(tmp_path / "new" / "m")
    assert os.listdir(tmp_path) == []  # no lock file, no .m.build.*, no new/
