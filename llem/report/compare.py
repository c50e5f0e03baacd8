"""`llem compare`: configurations side by side, mean +/- 95% CI, ratio to a baseline."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from llem.errors import UserError
from llem.report.campaign import Campaign, config_label


def parse_baseline(text: str | None, by: list[str]) -> dict[str, str]:
    """'backend=vllm,batch_size=8' -> {'backend': 'vllm', 'batch_size': '8'}."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--baseline '{part}': write KEY=VALUE pairs separated by commas, "
                            f"e.g. --baseline {by[0] if by else 'batch_size'}=1")
        if key not in by:
            raise UserError(f"--baseline key '{key}' is not one of --by ({', '.join(by)}): "
                            "the baseline must name a configuration of the comparison")
        out[key] = value.strip()
    return out


def _same(value: Any, text: str) -> bool:
    if isinstance(value, bool):
        return text.lower() in (("true", "1", "yes") if value else ("false", "0", "no"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return str(value) == text


def compare(camp: Campaign, by: list[str], metrics: list[str],
            baseline: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of group statistics, each with {metric}_ratio = mean / the baseline's mean."""
    rows = camp.group_stats(by, metrics)
    if not rows:
        raise UserError(f"campaign '{camp.name}' has no runs with status ok to compare")
    matches = [r for r in rows if all(_same(r[k], v) for k, v in baseline.items())]
    if not matches:
        have = "; ".join(config_label(r, by) for r in rows[:8])
        raise UserError(f"--baseline matches no configuration; configurations: {have}")
    if len(matches) > 1 and baseline:
        raise UserError(f"--baseline matches {len(matches)} configurations: name every --by "
                        f"key ({', '.join(by)})")
    base = matches[0]
    for r in rows:
        r["baseline"] = r is base
        for m in metrics:
            b, v = base[f"{m}_mean"], r[f"{m}_mean"]
            r[f"{m}_ratio"] = v / b if v is not None and b not in (None, 0) else None
    return rows, base


def columns(by: list[str], metrics: list[str]) -> list[str]:
    """The machine-readable columns (csv, json)."""
    return [*by, "n", *[f"{m}_{s}" for m in metrics
                        for s in ("mean", "std", "ci95", "cv", "n", "ratio")], "baseline"]


def fmt_num(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if v == 0 or 1e-3 <= abs(v) < 1e5:
        return f"{v:.4g}"
    return f"{v:.3e}"


def human_rows(rows: list[dict[str, Any]], by: list[str],
               metrics: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and cells for table / markdown: 'mean ± ci' and 'x ratio' per metric."""
    header = [*by, "n", *[h for m in metrics for h in (m, f"{m} ratio")]]
    cells = []
    for r in rows:
        line = [str(r[b]) for b in by] + [str(r["n"])]
        for m in metrics:
            mean, ci = r[f"{m}_mean"], r[f"{m}_ci95"]
            line.append(fmt_num(mean) + (f" ± {fmt_num(ci)}" if ci is not None else ""))
            ratio = r[f"{m}_ratio"]
            line.append("baseline" if r["baseline"] else
                        (f"x{ratio:.3f}" if ratio is not None else "n/a"))
        cells.append(line)
    return header, cells


def render(rows: list[dict[str, Any]], by: list[str], metrics: list[str], fmt: str) -> str:
    """csv / json / markdown text (the rich table is drawn by the CLI)."""
    if fmt == "json":
        cols = columns(by, metrics)
        return json.dumps([{c: r.get(c) for c in cols} for r in rows], default=str, indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns(by, metrics), extrasaction="ignore",
                           lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue().rstrip("\n")
    header, cells = human_rows(rows, by, metrics)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in cells]
    return "\n".join(lines)
