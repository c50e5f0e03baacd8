"""The server's own view of its load, sampled beside power: its Prometheus `/metrics`.

vLLM exposes requests running and waiting and its KV-cache use there (`vllm:` metrics);
other servers expose other names or no endpoint at all, which is recorded once, never an
error. A thread polls while a level runs (the load loop is not touched); its rows join the
level's samples (one row per poll, gpu_uuid null), on the window's clock.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# our column -> the servers' metric names (first found wins): vLLM v1, then older vLLM
METRICS: dict[str, tuple[str, ...]] = {
    "server_requests_running": ("vllm:num_requests_running",),
    "server_requests_waiting": ("vllm:num_requests_waiting",),
    "server_kv_cache_usage_pct": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
}
PERCENT = {"server_kv_cache_usage_pct"}  # servers report a 0-1 fraction


def parse(text: str) -> dict[str, float]:
    """Our columns from a /metrics text (values summed over label sets, e.g. per model)."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    found: dict[str, float] = {}
    for col, names in METRICS.items():
        name = next((n for n in names if n in values), None)
        if name is not None:
            found[col] = values[name] * (100 if col in PERCENT else 1)
    return found


class MetricsPoller:
    """Polls base_url/metrics every period_s in a thread until stop()."""

    def __init__(self, base_url: str, period_s: float = 0.5,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.url = base_url.rstrip("/").removesuffix("/v1") + "/metrics"
        self.period_s, self.clock = period_s, clock
        self.rows: list[dict[str, Any]] = []
        self.unavailable: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llem-server-metrics",
                                        daemon=True)

    def start(self) -> MetricsPoller:
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.rows

    def _run(self) -> None:
        while not self._stop.is_set():
            t = self.clock()
            try:
                with urllib.request.urlopen(self.url, timeout=2) as resp:
                    values = parse(resp.read().decode("utf-8", "replace"))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                self.unavailable = f"{self.url}: {type(exc).__name__}"
                if isinstance(exc, urllib.error.HTTPError) and exc.code == 404:
                    return  # the server has no metrics endpoint: nothing to poll
                values = {}
            if values:
                self.rows.append({"t": t, **values})
            elif self.unavailable is None:
                self.unavailable = f"{self.url}: none of {sorted(METRICS)}"
            self._stop.wait(self.period_s)


def window_rows(rows: list[dict[str, Any]], start_s: float, end_s: float) -> list[dict[str, Any]]:
    """The polls inside [start_s, end_s], timed from the window's start like power samples."""
    return [{"t_s": r["t"] - start_s, "gpu_uuid": None, "gpu_index": None,
             **{k: v for k, v in r.items() if k != "t"}}
            for r in rows if start_s <= r["t"] <= end_s]
