"""CPU package and DRAM energy from Linux RAPL (/sys/class/powercap), wrap-around handled."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True)
class Domain:
    """One RAPL zone: name is 'package-0', 'dram', 'core', ..."""

    name: str
    path: Path
    max_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text())


def domains(root: Path = POWERCAP) -> tuple[list[Domain], str | None]:
    """Readable package and DRAM zones, or ([], reason)."""
    if not root.is_dir():
        return [], f"no RAPL ({root} absent)"
    found: list[Domain] = []
    for zone in sorted(root.glob("intel-rapl:*")):
        try:
            name = (zone / "name").read_text().strip()
            max_uj = int((zone / "max_energy_range_uj").read_text())
            dom = Domain(name, zone, max_uj)
            dom.read_uj()
        except (OSError, ValueError):
            continue
        if name.startswith("package") or name == "dram":
            found.append(dom)
    if not found:
        return [], f"no readable RAPL package/dram zone under {root} (permissions?)"
    return found, None


def delta_uj(start: int, end: int, max_uj: int) -> int:
    """Counter difference across at most one wrap-around."""
    return end - start if end >= start else end + max_uj - start


class RaplReader:
    """Reads all zones at window edges; returns joules per kind (cpu package, dram)."""

    def __init__(self, zones: list[Domain]) -> None:
        self.zones = zones
        self._start: list[int] = []

    def begin(self) -> None:
        self._start = [z.read_uj() for z in self.zones]

    def end(self) -> dict[str, float]:
        out = {"cpu_energy_j": 0.0, "dram_energy_j": 0.0}
        has_dram = False
        for z, s in zip(self.zones, self._start, strict=True):
            j = delta_uj(s, z.read_uj(), z.max_uj) / 1e6
            if z.name == "dram":
                out["dram_energy_j"] += j
                has_dram = True
            else:
                out["cpu_energy_j"] += j
        if not has_dram:
            out.pop("dram_energy_j")
        return out
