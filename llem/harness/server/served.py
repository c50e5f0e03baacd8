"""A load group's server inside the worker: started once, kept across its rate levels.

In server mode the job runner "loads" a ServedModel instead of a backend library: the
backend's own server started on the job's GPUs (llem.harness.server.launch), or an endpoint
that already runs (the `endpoint` backend: nothing is started). Closing it stops the
server's whole process tree and records whether the GPUs got their memory back, for the
rows of the next group this worker serves.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from llem.backends import server_of
from llem.harness.server.launch import ServerProcess, backend_server
from llem.harness.server.proctree import StopReport
from llem.paths import cache_root

# where server logs go when the driver names no folder (LLEM_LOG_DIR, set by the scheduler:
# beside a local store, else the llem cache)
LOG_DIR_ENV = "LLEM_LOG_DIR"


def log_dir() -> Path:
    path = Path(os.environ.get(LOG_DIR_ENV) or cache_root() / "logs").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


class ServedModel:
    """What a server-mode worker holds while its group runs (the runner's `backend`)."""

    reloads_in_process = True  # stopping the server frees everything it held

    def __init__(self, backend: str, load: dict[str, Any], gpus: int,
                 start_timeout_s: float = 600.0) -> None:
        self.backend = backend
        self.model = str(load["model"])
        module = server_of(backend)
        if module is None:
            raise RuntimeError(f"backend '{backend}' has no server mode")
        self.process: ServerProcess | None = None
        self.api_key_env: str | None = None
        # sweep: (synchronous, maximum) rates by anchor key (llem.harness.server.level)
        self.anchors: dict[str, tuple[float | None, float | None]] = {}
        t0 = time.perf_counter()
        if hasattr(module, "settings"):  # an endpoint that already runs: nothing to start
            s = module.settings(self.model, dict(load.get("engine") or {}))
            self.base_url, self.served_model = s.base_url, s.model
            self.api_key_env = s.api_key_env
            self.log_path: str | None = None
            self.load_facts: dict[str, Any] = {"server_url": self.base_url}
            return
        log = log_dir() / f"{backend}-{os.getpid()}-{uuid.uuid4().hex[:8]}.log"
        self.process = backend_server(
            backend, model=self.model, dtype=str(load.get("dtype", "auto")),
            engine=dict(load.get("engine") or {}), log_path=log, python=sys.executable,
            gpus=gpus, start_timeout_s=start_timeout_s)
        self.process.start()
        cmd = self.process.cmd
        self.base_url = self.process.base_url
        self.served_model = cmd.served_model if cmd is not None else self.model
        self.log_path = str(log)
        self.load_facts = {"server_url": self.base_url, "server_log": self.log_path,
                           "server_start_s": time.perf_counter() - t0,
                           "server_ready_s": self.process.ready_s}

    def alive(self) -> bool:
        return self.process is None or self.process.alive()

    def check(self) -> None:
        """Raise (with the server's exit and log tail) when the server died."""
        if self.process is not None:
            self.process.raise_if_dead()

    def close(self) -> StopReport | None:
        """Stop the server's process tree; the report says whether the GPUs are free."""
        if self.process is None:
            return None
        report = self.process.stop()
        self.process = None
        return report
