"""The server's Prometheus /metrics sampled beside power: parsing vLLM's names (v1 and the
older KV-cache one), polling a live HTTP endpoint, and a server without /metrics."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from llem.harness.server.metrics import MetricsPoller, parse, window_rows

VLLM_TEXT = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 5.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{engine="0",model_name="m"} 1234.0
"""


def test_parse_vllm_metrics() -> None:
    assert parse(VLLM_TEXT) == {"server_requests_running": 3.0, "server_requests_waiting": 5.0,
                                "server_kv_cache_usage_pct": 25.0}
    older = VLLM_TEXT.replace("kv_cache_usage_perc", "gpu_cache_usage_perc")
    assert parse(older)["server_kv_cache_usage_pct"] == 25.0
    two_engines = VLLM_TEXT + 'vllm:num_requests_running{engine="1",model_name="m"} 2.0\n'
    assert parse(two_engines)["server_requests_running"] == 5.0
    assert parse("# nothing\nother_metric 1\n") == {}


@contextmanager
def serve(body: bytes | None) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if body is None or self.path != "/metrics":
                self.send_error(404)
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    finally:
        srv.shutdown()


def test_poller_samples_a_live_endpoint_on_the_window_clock() -> None:
    with serve(VLLM_TEXT.encode()) as url:
        t0 = time.perf_counter()
        poller = MetricsPoller(url, period_s=0.05).start()
        time.sleep(0.5)
        rows = poller.stop()
        t1 = time.perf_counter()
    assert len(rows) >= 4 and poller.unavailable is None
    inside = window_rows(rows, t0, t1)
    assert len(inside) == len(rows)
    assert all(0 <= r["t_s"] <= t1 - t0 and r["gpu_uuid"] is None for r in inside)
    assert inside[0]["server_requests_waiting"] == 5.0
    assert window_rows(rows, t1 + 1, t1 + 2) == []


def test_a_server_without_metrics_is_recorded_once_not_an_error() -> None:
    with serve(None) as url:
        poller = MetricsPoller(url, period_s=0.05).start()
        time.sleep(0.3)
        rows = poller.stop()
    assert rows == [] and "HTTPError" in str(poller.unavailable)
