"""check_reachable on the address shapes llem's CLI accepts: IPv6 in brackets and a user:pw@
prefix reach the socket as a bare host (a bracketed host was 'Name or service not known',
an internal error in the dry run and `doctor --address`)."""

from __future__ import annotations

import socket

import pytest

from llem.scheduler.cluster import check_reachable


def _listener(family: int, host: str) -> socket.socket:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.listen(1)
    return s


def _v6() -> bool:
    try:
        _listener(socket.AF_INET6, "::1").close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("shape", ["{h}:{p}", "ray://{h}:{p}", "ray://user:pw@{h}:{p}",
                                   "http://{h}:{p}/"])
def test_ipv4_shapes_reach_the_listener(shape: str) -> None:
    s = _listener(socket.AF_INET, "127.0.0.1")
    try:
        check_reachable(shape.format(h="127.0.0.1", p=s.getsockname()[1]))
    finally:
        s.close()


@pytest.mark.skipif(not _v6(), reason="no IPv6 loopback on this machine")
@pytest.mark.parametrize("shape", ["[::1]:{p}", "ray://[::1]:{p}", "http://[::1]:{p}"])
def test_bracketed_ipv6_reaches_the_listener(shape: str) -> None:
    s = _listener(socket.AF_INET6, "::1")
    port = s.getsockname()[1]
    try:
        check_reachable(shape.format(p=port))
    finally:
        s.close()
    with pytest.raises(ConnectionError, match="nothing answers at ::1"):
        check_reachable(shape.format(p=port), timeout_s=1.0)  # closed now: refused
