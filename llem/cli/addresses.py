"""Ray addresses given on the command line or in RAY_ADDRESS, checked before anything
starts: `llem run`'s GCS address (host:port, ray://host:port, auto) and the dashboard
address of `llem submit`, `status`, `logs` and `stop` (http://HEAD:8265). Ray itself took
minutes on an address where nothing answers, printed its own warnings on several lines, and
raised an internal error on `auto` with no cluster running."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

from llem.credentials import mask_shapes, redact
from llem.errors import UserError

REACH_TIMEOUT_S = 3.0  # as llem.scheduler.cluster.check_reachable
PROC = Path("/proc")  # where Ray looks for a running cluster's processes (a test's folder)
HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def split_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a Ray address as Ray parses it (host:port, [IPv6]:port, ray://...;
    an IPv6 literal in brackets, with its %zone if any), None if it is not one."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or len(port) > 5 or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
        return host[1:-1], int(port)
    return (host, int(port)) if HOST.fullmatch(host) else None


def _bare_v6(address: str) -> bool:
    """An IPv6 address written without brackets (::1:6379 or ::1), which Ray cannot split."""
    rest = address.strip().removeprefix("ray://")
    for candidate in (rest, rest.rpartition(":")[0]):
        try:
            ipaddress.IPv6Address(candidate)
            return True
        except ValueError:
            pass
    return False


def check_address(address: str | None, where: str) -> None:
    """A Ray address Ray can parse, with something listening there, before anything starts
    (ray.init raised a ValueError, an internal error, once the grid was checked, or retried
    for minutes)."""
    if address is None or address == "local":
        return
    if address == "auto":
        found = find_auto(where)
        if found is None:
            return
        address = found
    shown = mask_shapes(redact(address))
    parsed = split_address(address)  # (a space around it is no address to Ray either)
    if parsed is None:
        v6 = " (an IPv6 address goes in brackets: [::1]:6379)" if _bare_v6(address) else ""
        raise UserError(f"{where} {shown!r} is not a Ray address: give host:port (the head's "
                        f"GCS port, e.g. 10.0.0.5:6379), ray://host:port, or auto{v6}")
    host, port = parsed
    try:  # ray.init would retry for minutes, printing a warning every 5 s
        socket.create_connection((host, port), timeout=REACH_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(f"{where} {shown}: nothing answers at {shown.removeprefix('ray://')} "
                        f"({exc.strerror or exc}): is the Ray head running there "
                        "(`ray start --head`), and its port open to this machine?") from None


def find_auto(where: str) -> str | None:
    """The GCS address `auto` stands for, found as Ray finds it without importing Ray (it
    lives in llem.scheduler): the cluster `ray start` began last (Ray's temp folder's
    ray_current_cluster), else None where a Ray process runs here (Ray picks it); a
    UserError when none does (ray.init raised an internal ConnectionError)."""
    temp = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"  # as Ray's
    with contextlib.suppress(OSError, UnicodeDecodeError):
        found = (Path(temp) / "ray" / "ray_current_cluster").read_text().strip()
        if found:
            return found
    if not PROC.is_dir():
        return None  # not Linux: Ray decides
    for pid in PROC.iterdir():
        with contextlib.suppress(OSError):
            if pid.name.isdigit() and b"--gcs-address" in (pid / "cmdline").read_bytes():
                return None
    raise UserError(f"{where} auto: no Ray cluster runs on this machine (`ray start "
                    "--head` starts one); give the head's address, or leave --address and "
                    "RAY_ADDRESS out for an embedded Ray")


def check_dashboard(address: str, where: str) -> None:
    """The address of a cluster's Ray Jobs API: its dashboard, http(s)://host[:port] (what
    the README and `ray job submit` use), or a GCS address Ray looks the dashboard up from;
    something must answer there. A space, an unknown scheme ("Module: ftp does not exist")
    or a GCS port where nothing answers (40 s and Ray's warnings) are one line each."""
    shown = mask_shapes(redact(address))
    bad = UserError(f"{where} {shown!r} is not a dashboard address: give http://HEAD:8265 "
                    "(the head's dashboard port), or the GCS address HEAD:6379")
    if any(ch.isspace() or ord(ch) < 32 for ch in address):
        raise bad
    scheme, sep, _ = address.partition("://")
    if not sep or scheme == "ray":
        check_address(address, where)  # a GCS address: Ray asks the GCS for the dashboard
        return
    if scheme not in ("http", "https"):
        raise bad
    try:
        url = urlsplit(address)
        host, port = url.hostname, url.port or (443 if scheme == "https" else 80)
    except ValueError:  # http://[::1, a port over 65535
        raise bad from None
    if not host or not (HOST.fullmatch(host) or _v6(host)):
        raise bad
    try:
        socket.create_connection((host, port), timeout=REACH_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(f"cannot reach the Ray cluster at {shown!r} ({where}): nothing "
                        f"answers at {host}:{port} "
                        f"({exc.strerror or exc}): is the Ray head running there, with its "
                        "dashboard (`ray start --head --dashboard-host 0.0.0.0`)?") from None


def _v6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True
