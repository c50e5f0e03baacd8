"""The calibration arithmetic (llem.measure.calibration): factors per GPU model from the
reference readings, and a row's normalised energy."""

from __future__ import annotations

import pytest

from llem.measure.calibration import Reading, factors, normalised, readings


def _ref(uuid: str, joules: list[float], name: str = "H100", tokens: int = 100,
         **extra: object) -> dict[str, object]:
    return {"status": "ok", "energy_valid": True, "output_tokens": tokens, "gpu_name": name,
            "gpu_uuids": [uuid] if len(joules) == 1 else [f"{uuid}-{i}" for i in
                                                          range(len(joules))],
            "gpu_energy_j_per_gpu": joules, **extra}


def test_factor_is_reference_over_its_models_mean() -> None:
    # three H100s whose sensors read -9.5%, 0 and +6.4% on the same work (100 J true)
    found = readings([_ref("a", [90.5]), _ref("b", [100.0]), _ref("c", [106.4])])
    assert [r.joules_per_token for r in found] == pytest.approx([0.905, 1.0, 1.064])
    f = factors(found)
    mean = (0.905 + 1.0 + 1.064) / 3
    assert f["a"].factor == pytest.approx(0.905 / mean)
    assert f["c"].factor == pytest.approx(1.064 / mean)
    assert f["b"].mean_j == pytest.approx(mean) and f["b"].gpus == 3
    # the factors' mean is 1: the GPUs agree with their mean sensor, not with a true joule
    assert sum(x.factor for x in f.values()) / 3 == pytest.approx(1.0)


def test_models_are_never_mixed_and_a_lone_gpu_keeps_factor_1() -> None:
    f = factors([Reading("a", "H100", 1.0), Reading("b", "H100", 1.2),
                 Reading("c", "A100", 3.0)])
    assert f["a"].factor == pytest.approx(1 / 1.1) and f["b"].factor == pytest.approx(1.2 / 1.1)
    assert f["c"].factor == 1.0 and f["c"].gpus == 1


def test_a_gpu_read_twice_keeps_its_mean() -> None:
    f = factors([Reading("a", "H100", 1.0), Reading("a", "H100", 1.2),
                 Reading("b", "H100", 1.1)])
    assert f["a"].reference_j == pytest.approx(1.1) and f["a"].factor == pytest.approx(1.0)


def test_failed_invalid_and_empty_references_give_no_reading() -> None:
    rows = [_ref("ok", [50.0]), _ref("bad", [50.0], energy_valid=False),
            _ref("failed", [50.0], status="failed"), _ref("none", [None]),  # type: ignore[list-item]
            _ref("zero", [50.0], tokens=0)]
    assert [r.uuid for r in readings(rows)] == ["ok"]


def test_multi_gpu_reference_reads_each_gpu() -> None:
    found = readings([_ref("x", [40.0, 60.0], tokens=10)])
    assert [(r.uuid, r.joules_per_token) for r in found] == [("x-0", 4.0), ("x-1", 6.0)]


def test_normalised_divides_each_gpus_energy_by_its_factor() -> None:
    f = factors([Reading("a", "H100", 0.9), Reading("b", "H100", 1.1)])  # factors 0.9, 1.1
    row = {"gpu_uuids": ["a"], "gpu_energy_j_per_gpu": [90.0], "energy_j": 90.0,
           "energy_per_token_j": 0.9}
    cols = normalised(row, f)
    assert cols["energy_j_normalised"] == pytest.approx(100.0)
    assert cols["energy_per_token_j_normalised"] == pytest.approx(1.0)
    assert cols["calibration_factor"] == pytest.approx(0.9)
    assert (cols["calibration_reference_j"], cols["calibration_reference_mean_j"],
            cols["calibration_gpus"]) == (pytest.approx(0.9), pytest.approx(1.0), 2)
    # two GPUs and boundary node: each GPU by its own factor, the host's 50 J untouched
    two = {"gpu_uuids": ["a", "b"], "gpu_energy_j_per_gpu": [90.0, 110.0],
           "energy_j": 250.0, "energy_per_token_j": 2.5}
    cols = normalised(two, f)
    assert cols["energy_j_normalised"] == pytest.approx(250.0)  # 100 + 100 + 50
    assert cols["calibration_factor"] == pytest.approx(1.0)
    assert cols["energy_per_token_j_normalised"] == pytest.approx(2.5)


def test_rows_without_gpu_energy_or_factor_are_left_as_they_are() -> None:
    f = factors([Reading("a", "H100", 1.0)])
    assert normalised({"gpu_uuids": [], "energy_j": 5.0}, f) == {}  # a CPU job
    assert normalised({"gpu_uuids": ["z"], "gpu_energy_j_per_gpu": [5.0], "energy_j": 5.0},
                      f) == {}  # a GPU that was not calibrated
    cols = normalised({"gpu_uuids": ["a"], "gpu_energy_j_per_gpu": [5.0], "energy_j": None,
                       "energy_per_token_j": None}, f)
    assert "energy_j_normalised" not in cols and cols["calibration_factor"] == 1.0
