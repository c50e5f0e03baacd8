"""One benchmark figure: a ratio with the two absolute numbers it divides, and its goal.

Machines are noisy and absolute times do not carry from one to another, so every figure is
a ratio of two numbers measured side by side in the same run; both are kept so a reader
can see what was divided. A goal applies either to the ratio or to the measured value.
"""

from __future__ import annotations

import json
import operator
from dataclasses import asdict, dataclass
from typing import Any

OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}


@dataclass(frozen=True)
class Figure:
    """value / ref, e.g. llem's makespan / the ideal makespan."""

    item: str  # the numbering: "1 makespan", "2 overhead", ...
    name: str  # what the ratio means, e.g. "llem / ideal"
    value: float
    ref: float
    unit: str  # unit of value and ref: "s", "MB", "ms/job", "tok/s"
    value_label: str = "llem"
    ref_label: str = "ref"
    goal: str | None = None  # "<= 1.05" (on the ratio) or "value < 2" (on the value)
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.ref if self.ref else float("inf")

    @property
    def met(self) -> bool | None:
        """Whether the goal holds; None when there is no goal."""
        if not self.goal:
            return None
        words = self.goal.split()
        subject = self.value if words[0] == "value" else self.ratio
        op, bound = words[-2], float(words[-1])
        return bool(OPS[op](subject, bound))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


def fmt(x: float, unit: str) -> str:
    if x == 0:
        return f"0 {unit}"
    digits = 3 if abs(x) < 10 else (1 if abs(x) < 1000 else 0)
    text = f"{x:.{digits}f}" if abs(x) >= 0.001 else f"{x:.2e}"
    return f"{text} {unit}"


def render(figures: list[Figure], title: str = "llem benchmarks") -> Any:
    """The rich table `make bench` ends with."""
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col, kw in (("item", {}), ("figure", {}), ("measured", {"justify": "right"}),
                    ("reference", {"justify": "right"}), ("ratio", {"justify": "right"}),
                    ("goal", {}), ("met", {"justify": "center"})):
        table.add_column(col, **kw)
    for f in figures:
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "-"}[f.met]
        table.add_row(f.item, f.name + (f" ({f.note})" if f.note else ""),
                      f"{f.value_label} {fmt(f.value, f.unit)}",
                      f"{f.ref_label} {fmt(f.ref, f.unit)}", f"{f.ratio:.3f}",
                      f.goal or "-", met)
    return table


def dump(figures: list[Figure], path: str) -> None:
    with open(path, "w") as fh:
        json.dump([f.as_dict() for f in figures], fh, indent=1)


def load(path: str) -> list[Figure]:
    with open(path) as fh:
        rows = json.load(fh)
    return [Figure(**{k: v for k, v in r.items() if k not in ("ratio", "met")}) for r in rows]


def markdown(figures: list[Figure]) -> str:
    """The same table as Markdown, for benchmarks/RESULTS.md."""
    lines = ["| item | figure | measured | reference | ratio | goal | met |",
             "|---|---|---:|---:|---:|---|:-:|"]
    for f in figures:
        met = {True: "yes", False: "**no**", None: "-"}[f.met]
        lines.append(f"| {f.item} | {f.name}" + (f" ({f.note})" if f.note else "")
                     + f" | {f.value_label} {fmt(f.value, f.unit)} | {f.ref_label} "
                     f"{fmt(f.ref, f.unit)} | {f.ratio:.3f} | {f.goal or '-'} | {met} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m benchmarks.figures FIGURES.json -> Markdown table
    import sys

    print(markdown(load(sys.argv[1])))
