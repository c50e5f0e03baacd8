"""The columns of cross-GPU calibration (`measurement.calibrate`, llem.measure.calibration):
a row's energy normalised by its GPUs' factors, beside the raw figures it keeps, and where
the factor came from. Set by the driver (llem.scheduler.calibration) as it stores each row;
null without calibration. The reference jobs' own rows are in campaign
`<campaign>.calibration` (one cycle per GPU set)."""

# ruff: noqa: RUF001
# (descriptions quote docs/schema.md)

from __future__ import annotations

from dataclasses import dataclass

from llem.store.column import I32, F, S, col
from llem.store.validity_fields import ValidityFields

HOW = "(docs/schema.md, Cross-GPU calibration)"


@dataclass(slots=True, kw_only=True)
class CalibrationFields(ValidityFields):
    """Runs columns of `measurement.calibrate`."""

    energy_j_normalised: float | None = col(
        "energy", F, "J", "`energy_j` with each GPU's counter energy (`gpu_energy_j_per_gpu`) "
        "divided by that GPU's `calibration_factor`, the host's part (boundary node) as it "
        f"is: what the job's GPUs would have reported with their model's mean sensor {HOW}. "
        "Null without `measurement.calibrate`, or when a GPU of the row has no factor.")
    energy_per_token_j_normalised: float | None = col(
        "energy", F, "J/token", "`energy_per_token_j × energy_j_normalised / energy_j`.")
    calibration_factor: float | None = col(
        "energy", F, "ratio", "The row's GPUs' calibration factor: a GPU's reference energy per "
        "token over the mean of its model's GPUs' (1 = the model's mean sensor; 1.05 = reads "
        "5% high). With several GPUs, `gpu_energy_j / normalised GPU energy` (their factors "
        "weighted by their energy).")
    calibration_reference_j: float | None = col(
        "energy", F, "J/token", "The reference job's energy per output token on the row's GPU "
        "(mean over its GPUs), from its counter (`gpu_energy_j_per_gpu / output_tokens`).")
    calibration_reference_mean_j: float | None = col(
        "energy", F, "J/token", "The mean of `calibration_reference_j` over every GPU of the "
        "same model (NVML name) that ran the reference in this session.")
    calibration_gpus: int | None = col(
        "energy", I32, "GPUs", "How many GPUs of that model the mean is over.")
    calibration_reference: str | None = col(
        "energy", S, "-", "Where the factors came from: `<campaign>.calibration job <job_id> "
        "session <session_id>`, the reference job's rows (`llem query \"SELECT gpu_uuids, "
        "energy_per_token_j FROM runs WHERE campaign = '<campaign>.calibration'\"`).")
