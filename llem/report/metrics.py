"""Metric names users type (j_per_token) resolved to runs columns (energy_per_token_j)."""

from __future__ import annotations

import difflib
from collections.abc import Collection

from llem.errors import UserError

ALIASES = {
    "j_per_token": "energy_per_token_j", "joules_per_token": "energy_per_token_j",
    "energy_per_token": "energy_per_token_j", "net_j_per_token": "energy_net_per_token_j",
    "j_per_request": "energy_per_request_j", "energy": "energy_j", "joules": "energy_j",
    "power": "avg_power_w", "power_w": "avg_power_w", "idle_power": "idle_power_w",
    "throughput": "tokens_per_s", "tok_per_s": "tokens_per_s", "tps": "tokens_per_s",
    "requests_per_s": "requests_per_s", "duration": "duration_s",
    "latency": "latency_p50_s", "latency_p50": "latency_p50_s", "latency_p90": "latency_p90_s",
    "latency_p99": "latency_p99_s", "latency_mean": "latency_mean_s",
    "ttft": "ttft_p50_s", "ttft_p50": "ttft_p50_s", "ttft_p99": "ttft_p99_s",
    "itl": "itl_p50_s", "itl_p50": "itl_p50_s", "itl_p99": "itl_p99_s", "tpot": "tpot_mean_s",
}

# What the report's results table and compare's default show, in this order.
HEADLINE = ("energy_per_token_j", "tokens_per_s", "latency_p50_s", "latency_p99_s",
            "ttft_p50_s", "avg_power_w", "energy_j")


def resolve(names: list[str], numeric_columns: list[str], what: str = "metric",
            columns: Collection[str] = ()) -> list[str]:
    """Each name as a numeric runs column; an unknown one, or one of the other columns
    (text, timestamps), is a UserError with a suggestion."""
    out = []
    for raw in names:
        name = raw.strip()
        col = ALIASES.get(name, name)
        if col not in numeric_columns and col in columns:
            raise UserError(f"{what} '{name}' is a column of the runs view but not a number: "
                            f"a {what} must be numeric (e.g. {', '.join(HEADLINE[:3])}; group "
                            "by it with --by, where it is a setting)")
        if col not in numeric_columns:
            choices = sorted(set(numeric_columns) | set(ALIASES))
            close = difflib.get_close_matches(name, choices, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UserError(f"unknown {what} '{name}': {hint}use a numeric column of the runs "
                            f"view (e.g. {', '.join(HEADLINE[:3])}) or an alias "
                            "(j_per_token, throughput, ttft, latency_p99)")
        if col not in out:
            out.append(col)
    return out


NAMES = {"energy_per_token_j": "energy per token (J/token)",
         "energy_per_token_j_normalised": "energy per token, normalised across GPUs (J/token)",
         "energy_net_per_token_j": "net energy per token (J/token)",
         "energy_per_request_j": "energy per request (J/request)",
         "energy_per_good_request_j": "energy per good request (J/request)",
         "arrival_rate_achieved": "achieved rate (requests/s)",
         "goodput_requests_per_s": "goodput (requests/s)",
         "slo_attainment": "SLO attainment (share)", "request_rate": "target rate (requests/s)"}
ACRONYMS = {"ttft": "TTFT", "itl": "ITL", "tpot": "TPOT", "e2e": "e2e", "slo": "SLO"}


def _words(stem: str) -> str:
    return " ".join(ACRONYMS.get(w, w) for w in stem.split("_"))


def label(column: str) -> str:
    """A human axis label with its unit: 'energy_per_token_j' -> 'energy per token
    (J/token)', 'ttft_p99_s' -> 'TTFT p99 (s)', 'tokens_per_s' -> 'tokens/s'."""
    if column in NAMES:
        return NAMES[column]
    if column.endswith("_per_s"):
        return _words(column[: -len("_per_s")]) + "/s"
    for suffix, unit in (("_j", "J"), ("_s", "s"), ("_w", "W")):
        if column.endswith(suffix):
            return f"{_words(column[: -len(suffix)])} ({unit})"
    return _words(column)
