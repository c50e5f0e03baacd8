"""Calibration's choices that need no Ray (llem.scheduler.calibration): which job is the
reference, the GPU sets it runs on, and the columns a stored row gets."""

from __future__ import annotations

import pytest

from llem.config.grid import iter_jobs
from llem.config.load import load_text
from llem.config.models import Point, Resources
from llem.measure.calibration import Reading, factors
from llem.scheduler.calibration import Calibration, gpu_sets, reference_job
from llem.scheduler.placement import Books, Need
from llem.store.run_row import RunRow

GRID = """
name: c
models: [m]
backends: [noop]
grid:
  batch_size: [8, 1]
  resources.gpus_per_job: {gpus}
measurement: {{calibrate: {on}}}
"""


def test_the_reference_is_the_first_gpu_configurations_first_job() -> None:
    loaded = load_text(GRID.format(gpus=1, on="true"))
    asked, group, job = reference_job(loaded)
    assert asked and job is not None and job.cycle == 0 and job.point.batch_size == 8
    assert group.first.batch_size == 8
    assert reference_job(load_text(GRID.format(gpus=1, on="false"))) == (False, None, None)
    assert reference_job(load_text(GRID.format(gpus=0, on="true"))) == (True, None, None)


def test_calibrate_off_leaves_job_ids_as_they_were() -> None:
    ids = {j.job_id for j in iter_jobs(load_text(GRID.format(gpus=1, on="false")))}
    plain = GRID.format(gpus=1, on="false").replace("measurement: {calibrate: false}\n", "")
    assert ids == {j.job_id for j in iter_jobs(load_text(plain))}


def test_gpu_sets_cover_every_node_the_reference_fits() -> None:
    books = Books.from_nodes([
        {"node_id": "a", "resources": {"GPU": 4.0, "CPU": 8.0}},
        {"node_id": "b", "resources": {"GPU": 3.0, "CPU": 8.0}},
        {"node_id": "cpu", "resources": {"CPU": 8.0}}])
    one = Need.of(Resources(gpus_per_job=1))
    assert gpu_sets(books, one) == ["a"] * 4 + ["b"] * 3
    two = Need.of(Resources(gpus_per_job=2))
    assert gpu_sets(books, two) == ["a", "a", "b"]  # b's third GPU is not calibrated
    books.lose("b")
    assert gpu_sets(books, one) == ["a"] * 4


def test_apply_sets_the_columns_of_ok_rows_only() -> None:
    cal = Calibration(factors([Reading("g0", "H100", 0.9), Reading("g1", "H100", 1.1)]),
                      "c.calibration job x session s")
    run = RunRow(status="ok", gpu_uuids=["g1"], gpu_energy_j_per_gpu=[110.0], energy_j=110.0,
                 energy_per_token_j=1.1)
    cal.apply(run)
    assert run.energy_j == 110.0  # the raw figures stay
    assert run.energy_j_normalised == pytest.approx(100.0)
    assert run.energy_per_token_j_normalised == pytest.approx(1.0)
    assert run.calibration_reference == "c.calibration job x session s"
    failed = RunRow(status="failed", gpu_uuids=["g1"], gpu_energy_j_per_gpu=[110.0],
                    energy_j=110.0)
    cal.apply(failed)
    assert failed.calibration_factor is None
    none = RunRow(status="ok", gpu_uuids=["g1"], gpu_energy_j_per_gpu=[110.0], energy_j=110.0)
    Calibration().apply(none)  # calibration off
    assert none.energy_j_normalised is None
    assert Point(backend="noop", model="m").measurement.calibrate is False
