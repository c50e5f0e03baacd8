"""A launched server's process tree, stopped whole, and the check that its GPUs were freed.

A server is a tree: vLLM's API server and its engine core, transformers serve and its
spawned helpers, trtllm-serve and its MPI workers. Signalling only the top process leaves
the rest holding GPU memory, and a child whose parent died is re-parented away from the
tree. So the tree is noted while the server runs (ProcessTree.remember) and collected again
before any signal: the noted processes still running (psutil checks each one's start time,
so a reused pid is never signalled), the top process's descendants, and every process still
in the server's session (start_new_session: session and group ids are the top pid).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from llem.measure.gpu import visible_memory_used_mib


@dataclass
class StopReport:
    """How a stop went: plain data, recorded with the group's rows."""

    stop_s: float  # from the first signal until no process of the tree is left
    exit_code: int | None  # the server's top process (negative: the signal that ended it)
    processes: int  # processes in the tree when the stop began
    terminated: int  # of them, gone after SIGTERM
    killed: list[int] = field(default_factory=list)  # pids that needed SIGKILL
    left: list[int] = field(default_factory=list)  # pids still there after SIGKILL
    gpu_memory_before_mib: dict[str, float] | None = None  # by GPU UUID, before the start
    gpu_memory_after_mib: dict[str, float] | None = None
    gpu_memory_released: bool | None = None  # None: not checked (gpu_check says why)
    gpu_check: str | None = None

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def running(p: psutil.Process) -> bool:
    """Still running (the same process: psutil compares start times); a zombie is gone."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _pgid(p: psutil.Process) -> int | None:
    try:
        return os.getpgid(p.pid) if p.is_running() else None
    except (OSError, psutil.Error):
        return None


class ProcessTree:
    """The processes of one server started with start_new_session=True."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.seen: dict[int, psutil.Process] = {}
        self.noted_at = 0.0

    def remember(self) -> None:
        """Note the tree's processes now: a child whose parent dies is still found at stop."""
        self.noted_at = time.perf_counter()
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.proc.pid)
            for p in [root, *root.children(recursive=True)]:
                self.seen.setdefault(p.pid, p)

    def collect(self) -> list[psutil.Process]:
        """Every process of the tree running now (see the module docstring)."""
        self.remember()
        procs = {pid: p for pid, p in self.seen.items() if running(p)}
        sid = self.proc.pid
        for p in psutil.process_iter():
            with contextlib.suppress(OSError, psutil.Error):
                if p.pid not in procs and os.getsid(p.pid) == sid and running(p):
                    procs[p.pid] = p
        return list(procs.values())

    def stop(self, term_timeout_s: float, kill_timeout_s: float = 5.0) -> StopReport:
        """SIGTERM (and SIGCONT) to the group and to members that left it, wait, SIGKILL what
        is left."""
        t0 = time.perf_counter()
        tree = self.collect()
        pgid = self.proc.pid
        if not any(_pgid(p) == pgid for p in tree):
            pgid = 0  # the group is empty: its id may belong to another group by now
        self._signal(pgid, tree, signal.SIGTERM)
        self._signal(pgid, tree, signal.SIGCONT)  # a stopped process acts on SIGTERM only then
        alive = self._wait_gone(tree, term_timeout_s)
        killed = [p.pid for p in alive]
        if alive:
            self._signal(pgid, alive, signal.SIGKILL)
            alive = self._wait_gone(alive, kill_timeout_s)
        code = self.proc.poll()
        if code is None:  # the top process is always reaped, even when it was left over
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(timeout=1.0)
        return StopReport(time.perf_counter() - t0, code, len(tree), len(tree) - len(killed),
                          killed, [p.pid for p in alive])

    @staticmethod
    def _signal(pgid: int, procs: list[psutil.Process], sig: signal.Signals) -> None:
        if pgid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        for p in procs:  # also those that left the group (setsid, setpgid)
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)

    def _wait_gone(self, procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
        """Those of procs still running after timeout_s."""
        deadline = time.perf_counter() + timeout_s
        while True:
            self.proc.poll()  # reap our own child as soon as it exits
            alive = [p for p in procs if running(p)]
            if not alive or time.perf_counter() >= deadline:
                return alive
            time.sleep(0.05)


def check_gpus(report: StopReport, before: dict[str, float] | None, reason: str | None, *,
               tolerance_mib: float, settle_s: float) -> None:
    """Fill report's GPU fields: are the job's GPUs back within tolerance_mib of their memory
    before the start? Waits up to settle_s (the driver frees a dead process's memory a moment
    after it exits). Without NVML the check is recorded as not possible."""
    report.gpu_memory_before_mib = before
    if before is None:
        report.gpu_check = f"not possible: {reason}"
        return
    deadline = time.perf_counter() + settle_s
    while True:
        after, why = visible_memory_used_mib()
        if after is None:
            report.gpu_check = f"not possible after the stop: {why}"
            return
        report.gpu_memory_after_mib = after
        over = {u: after.get(u, 0.0) - b for u, b in before.items()
                if after.get(u, 0.0) - b > tolerance_mib}
        if not over:
            report.gpu_memory_released = True
            return
        if time.perf_counter() >= deadline:
            report.gpu_memory_released = False
            report.gpu_check = "still held after the stop: " + ", ".join(
                f"{u} +{mib:.0f} MiB" for u, mib in sorted(over.items()))
            return
        time.sleep(0.5)
