"""`llem compare`: configurations side by side, mean +/- 95% CI, ratio to a baseline.

Energy metrics leave out the rows whose energy is invalid unless --include-invalid
(llem.report.campaign); `invalid_n` counts them per row, and the human formats show that
count in a column of its own when any row has one."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from llem.errors import UserError
from llem.report.campaign import Campaign, config_label
from llem.report.fmt import mean_ci, num, value


def parse_baseline(text: str | None, by: list[str]) -> dict[str, str]:
    """'backend=vllm,batch_size=8' -> {'backend': 'vllm', 'batch_size': '8'}."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, text_value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--baseline '{part}': write KEY=VALUE pairs separated by commas, "
                            f"e.g. --baseline {by[0] if by else 'batch_size'}=1")
        if key not in by:
            raise UserError(f"--baseline key '{key}' is not one of --by ({', '.join(by)}): "
                            "the baseline must name a configuration of the comparison")
        if key in out:  # the last one silently won
            raise UserError(f"--baseline names {key} twice ({key}={out[key]} and "
                            f"{key}={text_value.strip()}): the baseline is one configuration; "
                            "give each key once")
        out[key] = text_value.strip()
    return out


def _same(v: Any, text: str) -> bool:
    if isinstance(v, bool):
        return text.lower() in (("true", "1", "yes") if v else ("false", "0", "no"))
    if isinstance(v, int | float):
        try:
            return float(text) == float(v)
        except ValueError:
            return False
    if v is None:
        return text.lower() in ("null", "none", "")
    return value(v) == text or str(v) == text


# Server mode: the achieved rate and what met the SLOs, beside energy and throughput.
DEFAULT_METRICS = ("energy_per_token_j", "tokens_per_s")
SERVER_METRICS = ("energy_per_token_j", "tokens_per_s", "arrival_rate_achieved",
                  "goodput_requests_per_s", "slo_attainment")


NORMALISED = "energy_per_token_j_normalised"  # measurement.calibrate's figure


def default_metrics(camp: Campaign) -> list[str]:
    """What compare shows without --metric: goodput and SLO attainment added in server mode;
    J/token normalised across GPUs beside the raw one when the campaign was calibrated."""
    names = SERVER_METRICS if camp.server_mode else DEFAULT_METRICS
    out = [m for m in names if m in camp.columns]
    if NORMALISED in camp.columns and camp.sql(
            f"SELECT count({NORMALISED}) AS n FROM runs WHERE campaign = ?")[0]["n"]:
        out.insert(1, NORMALISED)
    return out


def names_of(camp: Campaign, keys: list[str]) -> list[str]:
    """The names a comparison's keys are shown by: a parameter's name, else the key."""
    return [camp.points.name_of(k) if k in camp.points.paths else k for k in keys]


def compare(camp: Campaign, keys: list[str], metrics: list[str],
            baseline_text: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of group statistics by `keys` (Campaign.keys), each key under its name (the
    second value), with {metric}_ratio = mean / the baseline's mean."""
    by = names_of(camp, keys)
    baseline = parse_baseline(baseline_text, by)
    rows = camp.group_stats(keys, metrics)
    if not rows:
        raise UserError(f"campaign '{camp.name}' has no runs with status ok to compare")
    for r in rows:
        for k, name in zip(keys, by, strict=True):
            if k != name:
                r[name] = r.pop(k)
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
    return rows, by


def columns(by: list[str], metrics: list[str], server: bool = False) -> list[str]:
    """The machine-readable columns (csv, json)."""
    return [*by, "n", *(["saturated_n"] if server else []), "invalid_n",
            *[f"{m}_{s}" for m in metrics for s in ("mean", "std", "ci95", "cv", "n", "ratio")],
            "baseline"]


def invalid_header(rows: list[dict[str, Any]], include_invalid: bool) -> str | None:
    """The human formats' column of rows whose energy is invalid: None when there are none."""
    if not any(r.get("invalid_n") for r in rows):
        return None
    return "energy invalid (included)" if include_invalid else "energy invalid (left out)"


def human_rows(rows: list[dict[str, Any]], by: list[str], metrics: list[str],
               server: bool = False, include_invalid: bool = False
               ) -> tuple[list[str], list[list[str]]]:
    """Header and cells for table / markdown: 'mean ± ci' and 'x ratio' per metric; in server
    mode how many of a level's cycles were stopped as over-saturated; how many cycles' energy
    is invalid, when any is."""
    invalid = invalid_header(rows, include_invalid)
    header = [*by, "n", *(["saturated"] if server else []), *([invalid] if invalid else []),
              *[h for m in metrics for h in (m, f"{m} ratio")]]
    cells = []
    for r in rows:
        line = [value(r[b]) for b in by] + [str(r["n"])]
        if server:
            k = r.get("saturated_n") or 0
            line.append(f"{k} of {r['n']}" if k else "no")
        if invalid:
            line.append(str(r.get("invalid_n") or 0))
        for m in metrics:
            line.append(mean_ci(r[f"{m}_mean"], r[f"{m}_ci95"]))
            ratio = r[f"{m}_ratio"]
            line.append("baseline" if r["baseline"] else
                        (f"x{num(ratio)}" if ratio is not None else "n/a"))
        cells.append(line)
    return header, cells


def render(rows: list[dict[str, Any]], by: list[str], metrics: list[str], fmt: str,
           server: bool = False, include_invalid: bool = False) -> str:
    """csv / json / markdown text (the rich table is drawn by the CLI)."""
    if fmt == "json":
        cols = columns(by, metrics, server)
        return json.dumps([{c: r.get(c) for c in cols} for r in rows], default=str, indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns(by, metrics, server), extrasaction="ignore",
                           lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue().rstrip("\n")
    header, cells = human_rows(rows, by, metrics, server, include_invalid)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in cells]
    return "\n".join(lines)
