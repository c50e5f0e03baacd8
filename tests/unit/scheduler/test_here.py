"""refuse_here: before an embedded Ray starts, a load group this machine can never run is one
ConfigError with the grid's line; a cluster given (--address, RAY_ADDRESS) is left to the
driver, which checks that cluster's nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem.config.load import load_text
from llem.errors import ConfigError
from llem.scheduler.here import refuse_here

GRID = """name: here
models: [m]
backends: [noop]
resources:
  gpus_per_job: 0
  cpus_per_job: {cpus}
"""


def test_more_cpus_than_this_machine_has_are_refused_with_the_line(tmp_path: Path,
                                                                    monkeypatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    loaded = load_text(GRID.format(cpus=100_000), base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"needs 100000 CPUs; this machine has \d+ \(lower it"
                       ) as err:
        refuse_here(loaded, None)
    assert err.value.line == 6 and err.value.key == "resources.cpus_per_job"
    assert "cannot run on this machine" in str(err.value) and "\n" not in str(err.value)
    refuse_here(load_text(GRID.format(cpus=1), base_dir=tmp_path), None)  # one CPU: fits


def test_a_cluster_given_is_checked_by_the_driver_not_here(tmp_path: Path,
                                                           monkeypatch) -> None:
    loaded = load_text(GRID.format(cpus=100_000), base_dir=tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    refuse_here(loaded, "10.0.0.1:6379")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    refuse_here(loaded, None)
