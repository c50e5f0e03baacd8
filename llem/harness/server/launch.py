"""The server launcher: a backend's own server, started in the worker and stopped whole.

The worker (a Ray actor holding the job's GPUs, CUDA_VISIBLE_DEVICES set) starts the
server once per load group and keeps it for the group's jobs (its rate levels):

- start: the command (an argument list, never a shell) in a session of its own, with the
  worker's environment, stdout and stderr into a log file the caller names (it is recorded
  with the rows). The port is free when chosen, but another process may take it before the
  server binds it: a start that fails on "address in use" is retried on a new port (a
  bounded number of times); a port given explicitly and taken is a PortInUseError.
- ready: the backend's health path answers 200, then /v1/models does. A server that exits
  first, or is not ready within the bound, is a ServerStartError with its exit code and the
  last lines of its log (credentials masked).
- alive / raise_if_dead: a server killed mid-level fails the job with the cause.
- stop: the whole process tree, collected with psutil before any signal (engine processes,
  children that left the group, orphans of a dead parent): SIGTERM to the group, a wait,
  SIGKILL for what is left. Idempotent; also run at interpreter exit and on the worker's
  SIGTERM. Then the job's GPUs must be back near their memory before the start: a
  StopReport says so, or why that could not be checked (no NVML: never a crash).

Limitation: a worker killed with SIGKILL runs no handler; the server's session then
outlives it (nothing in-process can prevent that).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from llem.backends import ServerCommand, server_of
from llem.credentials import redact
from llem.errors import UserError
from llem.harness.server.proctree import ProcessTree, StopReport, check_gpus
from llem.measure.gpu import visible_memory_used_mib

TAIL_LINES = 20
PORT_TAKEN = re.compile(r"address already in use|errno 98\b|eaddrinuse|failed to bind",
                        re.IGNORECASE)


class ServerError(RuntimeError):
    """A server that did not start, or died. The message holds the exit code and log tail."""

    def __init__(self, message: str, *, returncode: int | None = None, log_tail: str = "",
                 log_path: Path | None = None) -> None:
        text = message
        if log_tail:
            text += f"\n--- last lines of {log_path} ---\n{log_tail}"
        super().__init__(text)
        self.returncode, self.log_tail, self.log_path = returncode, log_tail, log_path


class ServerStartError(ServerError):
    """The server exited before it was ready, or was not ready within the bound."""


class ServerDiedError(ServerError):
    """The server was ready, then exited (killed, crashed) while it was still needed."""


class PortInUseError(ServerError, UserError):
    """A port given explicitly is taken by another process."""


def exit_text(code: int | None) -> str:
    """'exit code 1', or 'killed by SIGKILL (exit code -9)' for a signal."""
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name} (exit code {code})"
    return f"exit code {code}"


def port_free(host: str, port: int) -> bool:
    """Can a server bind host:port now (with SO_REUSEADDR, as uvicorn and vLLM bind)?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    """A port the kernel has free now; it may be taken again before the server binds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def read_tail(path: Path, offset: int = 0, lines: int = TAIL_LINES) -> str:
    """The last lines of the log from offset on, credentials masked."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(offset, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    # a progress bar redraws its line with \r: keep what a terminal would show last
    shown = [ln.rsplit("\r", 1)[-1].rstrip() for ln in text.split("\n")]
    return redact("\n".join([ln for ln in shown if ln][-lines:]))


# the server is local to the worker: a proxy from the environment must not be asked for it
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str, timeout_s: float) -> tuple[int, bytes]:
    """(HTTP status, body); status 0 when nothing answered."""
    try:
        with _OPENER.open(url, timeout=timeout_s) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""
    except (OSError, ValueError):
        return 0, b""


_LIVE: set[ServerProcess] = set()
_PREVIOUS_SIGTERM: Any = None


def _on_sigterm(signum: int, frame: Any) -> None:
    """The worker is told to stop: stop every server it started, then do what it would have."""
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()
    previous = _PREVIOUS_SIGTERM
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _install_sigterm() -> None:
    global _PREVIOUS_SIGTERM
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        return
    if threading.current_thread() is not threading.main_thread():
        return  # signals go to the main thread; atexit still covers a normal exit
    _PREVIOUS_SIGTERM = signal.signal(signal.SIGTERM, _on_sigterm)


class ServerProcess:
    """One server's life: start() until ready, alive() while used, stop() once.

    command(port) builds the server's command for a port (a backend's server.command with
    everything else bound: see backend_server). env is laid over the worker's environment
    (None removes a variable); CUDA_VISIBLE_DEVICES is kept as the worker has it.
    start_timeout_s bounds each start attempt; port_attempts bounds the attempts.
    """

    def __init__(self, command: Callable[[int], ServerCommand], log_path: Path, *,
                 host: str = "127.0.0.1", port: int | None = None,
                 env: Mapping[str, str | None] | None = None, start_timeout_s: float = 600.0,
                 port_attempts: int = 3, poll_s: float = 0.25, term_timeout_s: float = 15.0,
                 gpu_tolerance_mib: float = 512.0, gpu_settle_s: float = 10.0) -> None:
        self.build, self.log_path, self.host = command, Path(log_path), host
        self.requested_port, self.env = port, dict(env or {})
        self.start_timeout_s, self.poll_s = start_timeout_s, poll_s
        self.port_attempts = max(1, port_attempts)
        self.term_timeout_s, self.gpu_tolerance_mib = term_timeout_s, gpu_tolerance_mib
        self.gpu_settle_s = gpu_settle_s
        self.port: int | None = None
        self.cmd: ServerCommand | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.attempts = 0
        self.health_s: float | None = None  # start -> health path answered 200
        self.ready_s: float | None = None  # start -> /v1/models answered too
        self.served_models: list[str] = []
        self.report: StopReport | None = None
        self._offset = 0  # where this attempt's lines begin in the log
        self._t0 = 0.0  # perf_counter at this attempt's spawn
        self.tree: ProcessTree | None = None
        self._gpu_before: dict[str, float] | None = None
        self._gpu_reason: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- start -------------------------------------------------------------------------

    def start(self) -> ServerProcess:
        """Start and wait until ready; raises ServerStartError or PortInUseError."""
        if self.proc is not None:
            raise RuntimeError("ServerProcess.start: already started (one start per object)")
        self._gpu_before, self._gpu_reason = visible_memory_used_mib()
        explicit = bool(self.requested_port)
        if explicit and not port_free(self.host, int(self.requested_port or 0)):
            raise PortInUseError(f"port {self.requested_port} on {self.host} is taken by "
                                 "another process: choose another port or leave it unset")
        atexit.register(self.stop)
        _LIVE.add(self)
        _install_sigterm()
        for attempt in range(1, self.port_attempts + 1):
            self.attempts = attempt
            port = self.requested_port if self.requested_port else free_port(self.host)
            self._spawn(port)
            try:
                self._wait_ready()
                return self
            except ServerStartError as exc:
                raced = exc.returncode is not None and bool(PORT_TAKEN.search(exc.log_tail))
                if not raced or explicit or attempt == self.port_attempts:
                    self.stop()
                if not raced:
                    raise
                if explicit:
                    raise PortInUseError(f"port {port} on {self.host} was taken when the "
                                         "server bound it", returncode=exc.returncode,
                                         log_tail=exc.log_tail, log_path=self.log_path) from None
                if attempt == self.port_attempts:
                    raise ServerStartError(f"the server found its port taken {attempt} times "
                                           f"(last: {port})", returncode=exc.returncode,
                                           log_tail=exc.log_tail,
                                           log_path=self.log_path) from None
                self._stop_tree()  # the race: the port went to someone else; try another
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _spawn(self, port: int) -> None:
        self.port, self.health_s, self.ready_s = port, None, None
        self.cmd = cmd = self.build(port)
        for path, text in cmd.files.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **cmd.env}
        for k, v in self.env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._offset = log.seek(0, os.SEEK_END)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            log.write(redact(f"==> llem {stamp}: attempt {self.attempts}, port {port}: "
                             f"{' '.join(cmd.argv)}\n").encode())
            log.flush()
            self._t0 = time.perf_counter()
            self.proc = subprocess.Popen(cmd.argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        self.tree = ProcessTree(self.proc)

    def _wait_ready(self) -> None:
        assert self.proc is not None and self.cmd is not None
        deadline = self._t0 + self.start_timeout_s
        base = self.base_url
        while True:
            if self.tree is not None:
                self.tree.remember()
            code = self.proc.poll()
            if code is not None:
                raise ServerStartError(f"the server exited before it was ready ({exit_text(code)})",
                                       returncode=code, log_tail=self._tail(),
                                       log_path=self.log_path)
            left = deadline - time.perf_counter()
            if left <= 0:
                raise ServerStartError(f"the server was not ready within "
                                       f"{self.start_timeout_s:g} s (health {base}"
                                       f"{self.cmd.health_path}, then /v1/models)",
                                       log_tail=self._tail(), log_path=self.log_path)
            timeout = max(0.1, min(5.0, left))
            if self.health_s is None:
                if _get(base + self.cmd.health_path, timeout)[0] == 200:
                    self.health_s = time.perf_counter() - self._t0
                    continue
            else:
                status, body = _get(base + "/v1/models", timeout)
                if status == 200:
                    self.ready_s = time.perf_counter() - self._t0
                    self.served_models = _model_ids(body)
                    return
            time.sleep(min(self.poll_s, max(0.0, deadline - time.perf_counter())))

    def _tail(self) -> str:
        return read_tail(self.log_path, self._offset)

    # --- while in use ------------------------------------------------------------------

    def alive(self) -> bool:
        """Is the server's main process still running (and not stopped by us)?"""
        if self.proc is None or self.report is not None:
            return False
        if self.tree is not None and time.perf_counter() - self.tree.noted_at > 1.0:
            self.tree.remember()
        return self.proc.poll() is None

    def raise_if_dead(self) -> None:
        """ServerDiedError naming the exit and the log's last lines, if the server is gone."""
        if self.proc is None:
            raise ServerDiedError("the server was never started")
        if self.report is not None:
            raise ServerDiedError("the server was stopped by llem", log_path=self.log_path)
        code = self.proc.poll()
        if code is not None:
            raise ServerDiedError(f"the server (pid {self.proc.pid}, port {self.port}) exited "
                                  f"while in use: {exit_text(code)}", returncode=code,
                                  log_tail=self._tail(), log_path=self.log_path)

    def info(self) -> dict[str, Any]:
        """Plain facts for the rows: command (masked), port, log, times to health/ready."""
        return {"command": redact(" ".join(self.cmd.argv)) if self.cmd else None,
                "pid": self.proc.pid if self.proc else None, "port": self.port,
                "base_url": self.base_url if self.port else None,
                "log_path": str(self.log_path), "attempts": self.attempts,
                "health_s": self.health_s, "ready_s": self.ready_s,
                "served_model": self.cmd.served_model if self.cmd else None}

    # --- stop --------------------------------------------------------------------------

    def stop(self) -> StopReport:
        """Stop the whole tree (idempotent: a second call returns the first report)."""
        if self.report is not None:
            return self.report
        if self.proc is None:
            self.report = StopReport(0.0, None, 0, 0, gpu_check="never started")
            self._forget()
            return self.report
        report = self._stop_tree()
        check_gpus(report, self._gpu_before, self._gpu_reason,
                   tolerance_mib=self.gpu_tolerance_mib, settle_s=self.gpu_settle_s)
        self.report = report
        self._forget()
        return report

    def _stop_tree(self) -> StopReport:
        assert self.tree is not None
        return self.tree.stop(self.term_timeout_s)

    def _forget(self) -> None:
        _LIVE.discard(self)
        atexit.unregister(self.stop)


def _model_ids(body: bytes) -> list[str]:
    try:
        return [str(m.get("id")) for m in json.loads(body).get("data", [])]
    except (ValueError, AttributeError):
        return []


def backend_server(backend: str, *, model: str, dtype: str, engine: dict[str, Any],
                   log_path: Path, python: str, gpus: int = 0, host: str = "127.0.0.1",
                   port: int | None = None, env: Mapping[str, str | None] | None = None,
                   start_timeout_s: float = 600.0) -> ServerProcess:
    """A (not yet started) ServerProcess for a backend llem launches, from its registry
    server module; python is the backend environment's interpreter. Files the server needs
    (TensorRT-LLM's options) go beside the log."""
    module = server_of(backend)
    build = getattr(module, "command", None)
    if build is None:
        raise UserError(f"backend '{backend}' has no server that llem starts")

    def command(p: int) -> ServerCommand:
        cmd: ServerCommand = build(model, dtype=dtype, engine=engine, port=p, host=host,
                                   python=python, gpus=gpus, workdir=str(Path(log_path).parent))
        return cmd

    return ServerProcess(command, log_path, host=host, port=port, env=env,
                         start_timeout_s=start_timeout_s)
