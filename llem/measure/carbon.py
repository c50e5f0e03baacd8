"""Carbon intensity of the grid and a CPU energy model, from codecarbon's bundled data
(offline: nothing is fetched). Both are estimates and are stored under names that say so.

grid_intensity(m): measurement.grid_intensity_g_per_kwh as given; measurement.country (ISO
3166-1 alpha-3) from codecarbon's global energy mix (its `carbon_intensity`, or one it
computes from the country's mix); measurement.cloud {provider, region} from codecarbon's
cloud table (GCP publishes its regions' intensity; AWS and Azure do not, so those have no
number). The source of the number is returned with it and recorded with every row
(grid_intensity_source). A country or region codecarbon has no data for gives no number
(never codecarbon's silent world-average fallback), and the source says why.

CpuEstimate: codecarbon's CPU model where RAPL is unreadable: the package's TDP from its
registry (or its generic per-thread constant) scaled by the machine's CPU load over the
window (codecarbon's `cpu_load` mode). It fills cpu_energy_j_estimate, never cpu_energy_j.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from typing import Any

from llem.config.models import Measurement


def _version() -> str:
    from codecarbon import __version__

    return str(__version__)


def grid_intensity(m: Measurement) -> tuple[float | None, str | None]:
    """(gCO2e/kWh, where it came from); (None, None) when nothing was asked."""
    if m.grid_intensity_g_per_kwh is not None:
        return m.grid_intensity_g_per_kwh, "given: measurement.grid_intensity_g_per_kwh"
    if m.country is not None:
        return country_intensity(m.country)
    if m.cloud is not None:
        return cloud_intensity(m.cloud["provider"], m.cloud["region"])
    return None, None


@functools.cache
def country_intensity(iso3: str) -> tuple[float | None, str]:
    try:
        from codecarbon.core.emissions import Emissions
        from codecarbon.core.units import Energy
        from codecarbon.external.geography import GeoMetadata
        from codecarbon.input import DataSource
    except ImportError as exc:
        return None, f"unavailable: codecarbon not importable in the worker ({exc})"
    source = DataSource()
    mix = source.get_global_energy_mix_data()
    if iso3 not in mix:
        return None, f"unavailable: codecarbon {_version()} has no energy mix for {iso3}"
    kg = Emissions(source).get_country_emissions(Energy.from_energy(kWh=1.0),
                                                 GeoMetadata(country_iso_code=iso3))
    entry = mix[iso3]
    how = "carbon_intensity" if entry.get("carbon_intensity") is not None else \
        "computed from its energy mix"
    return float(kg) * 1000.0, (f"codecarbon {_version()} global energy mix: {iso3} "
                                f"({entry.get('country_name', iso3)}, {entry.get('year', '?')}, "
                                f"{how})")


@functools.cache
def cloud_intensity(provider: str, region: str) -> tuple[float | None, str]:
    try:
        from codecarbon.input import DataSource
    except ImportError as exc:
        return None, f"unavailable: codecarbon not importable in the worker ({exc})"
    df = DataSource().get_cloud_emissions_data()
    row = df.loc[(df["provider"] == provider) & (df["region"] == region)]
    if len(row) != 1:
        return None, (f"unavailable: codecarbon {_version()} has no carbon intensity for "
                      f"{provider} {region} (it has GCP regions only: AWS and Azure do not "
                      "publish theirs)")
    r = row.iloc[0]
    origin = r.get("source")
    return float(r["impact"]), (f"codecarbon {_version()} cloud regions: {provider} {region}"
                                f" ({r.get('country_name')})"
                                + (f", {origin}" if isinstance(origin, str) else ""))


class CpuEstimate:
    """codecarbon's load-based CPU power model over one window (start, then joules)."""

    def __init__(self) -> None:
        self.cpu: Any = None
        self.method: str | None = None
        self.reason: str | None = None
        try:
            from codecarbon.core.cpu import TDP
            from codecarbon.external.hardware import CPU, MODE_CPU_LOAD

            logging.getLogger("codecarbon").setLevel(logging.ERROR)
            tdp = TDP()  # ~1.5 s: fuzzy match of the CPU's name in codecarbon's registry
            self.cpu = CPU.from_utils(output_dir=tempfile.gettempdir(), mode=MODE_CPU_LOAD,
                                      model=tdp.model, tdp=tdp.tdp)
            self.method = (f"codecarbon {_version()} cpu_load model: {tdp.model}, "
                           f"{tdp.tdp} W at full load")
        except Exception as exc:  # not installed, an unknown platform
            self.reason = f"no CPU estimate: {type(exc).__name__}: {exc}"

    def start(self) -> None:
        if self.cpu is not None:
            self.cpu.start()

    def joules(self, seconds: float) -> float | None:
        if self.cpu is None:
            return None
        try:
            _, energy = self.cpu.measure_power_and_energy(last_duration=seconds)
        except Exception:
            return None
        return float(energy.kWh) * 3.6e6
