"""Cross-GPU calibration (measurement.calibrate): per-GPU factors from one reference job run
on every GPU, and the normalised figures of a row. Pure arithmetic; the reference jobs are
dispatched by llem.scheduler.calibration.

On-board power sensors of one GPU model differ by several percent (-9.5% to +6.4% between
GPUs of one model have been reported), so a comparison whose configurations or cycles land
on different GPUs carries that difference. The reference job is the same fixed workload on
each GPU (one job of the campaign: same model, prompts, batches and tokens), so the energy
each GPU reports for it per output token differs by the sensors' offsets (and by what
really differs between the boards). A GPU's factor is its reference energy per token over
the mean of the reference energies of every GPU of the same model (NVML name): the GPUs of
one model are normalised towards their common mean, never across models (an H100's factor
says nothing of an A100's). A reference of several GPUs (tensor parallel) reads each GPU's
own counter, which assumes its ranks do near-equal work. A row's normalised energy divides
each of its GPUs' energy by that GPU's factor.

This corrects a sensor's offset only if the reference work was identical on every GPU, and
it makes the GPUs agree with each other, not with a true joule: the mean sensor's error
stays. A reference whose energy was judged invalid (energy_valid false) gives no factor.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llem.config.grid import groups
from llem.config.loaded import Loaded


@dataclass(frozen=True)
class Reading:
    """One GPU's energy per output token on the reference job."""

    uuid: str
    model: str  # the GPU's NVML name: only GPUs of one model are compared
    joules_per_token: float


@dataclass(frozen=True)
class Factor:
    """One GPU's calibration: its reading over the mean of its model's readings."""

    uuid: str
    model: str
    reference_j: float  # this GPU's reference energy per token
    mean_j: float  # the mean over the `gpus` GPUs of its model
    gpus: int
    factor: float


def readings(rows: Iterable[Mapping[str, Any]]) -> list[Reading]:
    """Each GPU's reading from the reference jobs' runs rows: the GPU's own counter energy
    (gpu_energy_j_per_gpu, in gpu_uuids order) over the job's output tokens. Failed rows,
    rows without energy and rows whose energy is invalid give none."""
    out = []
    for r in rows:
        tokens = r.get("output_tokens")
        if r.get("status") != "ok" or r.get("energy_valid") is False or not tokens:
            continue
        for uuid, joules in zip(r.get("gpu_uuids") or [], r.get("gpu_energy_j_per_gpu") or [],
                                strict=False):
            if joules is not None and joules > 0:
                out.append(Reading(uuid, str(r.get("gpu_name") or ""), joules / tokens))
    return out


def factors(found: Iterable[Reading]) -> dict[str, Factor]:
    """GPU UUID -> its Factor. A GPU read twice keeps the mean of its readings; a model with
    one GPU gets factor 1 (nothing to compare it with)."""
    per_gpu: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in found:
        per_gpu[(r.model, r.uuid)].append(r.joules_per_token)
    by_model: dict[str, dict[str, float]] = defaultdict(dict)
    for (model, uuid), values in per_gpu.items():
        by_model[model][uuid] = statistics.fmean(values)
    out = {}
    for model, gpus in by_model.items():
        mean = statistics.fmean(gpus.values())
        for uuid, ref in gpus.items():
            out[uuid] = Factor(uuid, model, ref, mean, len(gpus), ref / mean)
    return out


def normalised(row: Mapping[str, Any], known: Mapping[str, Factor]) -> dict[str, Any]:
    """The calibration columns of a runs row (llem.store.calibration_fields): each GPU's
    counter energy divided by its factor; the host's energy (boundary node) as it is.
    Null figures when the row has no GPU energy or one of its GPUs has no factor."""
    uuids = list(row.get("gpu_uuids") or [])
    per_gpu = list(row.get("gpu_energy_j_per_gpu") or [])
    mine = [known.get(u) for u in uuids]
    if not uuids or None in mine or len(per_gpu) != len(uuids) or None in per_gpu:
        return {}
    fs = [f for f in mine if f is not None]
    cols: dict[str, Any] = {
        "calibration_reference_j": statistics.fmean(f.reference_j for f in fs),
        "calibration_reference_mean_j": statistics.fmean(f.mean_j for f in fs),
        "calibration_gpus": min(f.gpus for f in fs)}
    raw_gpu = float(sum(per_gpu))
    norm_gpu = float(sum(e / f.factor for e, f in zip(per_gpu, fs, strict=True)))
    cols["calibration_factor"] = raw_gpu / norm_gpu if norm_gpu > 0 else \
        statistics.fmean(f.factor for f in fs)
    energy, per_token = row.get("energy_j"), row.get("energy_per_token_j")
    if energy is None:
        return cols
    host = energy - raw_gpu  # boundary node: the CPU packages and DRAM, not calibrated
    cols["energy_j_normalised"] = host + norm_gpu
    if per_token is not None and energy > 0:
        cols["energy_per_token_j_normalised"] = per_token * cols["energy_j_normalised"] / energy
    return cols


def reference_job(loaded: Loaded) -> tuple[bool, Any, Any]:
    """(asked, group, job): whether any point asks for calibration, and the first load group
    (grid order) whose point asks for it and uses GPUs with its first job (None, None when
    there is none). One pass over the groups."""
    asked = False
    for g in groups(loaded):
        p = g.first
        asked = asked or p.measurement.calibrate
        if p.measurement.calibrate and p.resources.gpus_per_job > 0:
            return True, g, next(iter(g.jobs()), None)
    return asked, None, None
