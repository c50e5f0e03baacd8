"""What `llem submit`, `status`, `logs` and `stop` are given is checked before any cluster
is contacted: a listening socket shows that nothing connected to it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import assert_one_error_line, run_cli

GRID = "name: t\nmodels: [llem:tiny]\nbackends: [noop]\n"


@pytest.fixture
def head() -> Iterator[tuple[str, socket.socket]]:
    """A dashboard address where something listens (and never answers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        s.setblocking(False)
        yield f"http://127.0.0.1:{s.getsockname()[1]}", s


def contacted(s: socket.socket) -> bool:
    try:
        conn, _ = s.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


@pytest.mark.parametrize("command", ["status", "logs", "stop"])
@pytest.mark.parametrize(("job", "want"), [
    ("", "JOB is empty: give the id `llem submit` printed"),
    ("../../etc/passwd", "JOB '../../etc/passwd' is not a job id"),
    ("a b", "JOB 'a b' is not a job id"),
    ("a\tb", "JOB 'a\\tb' is not a job id"),
    ("x?y=1", "JOB 'x?y=1' is not a job id"),
    ("..", "JOB '..' is not a job id"),
])
def test_a_job_id_of_no_form_is_refused_before_any_contact(
        command: str, job: str, want: str, head: tuple[str, socket.socket],
        tmp_path: Path) -> None:
    address, sock = head
    r = run_cli(command, job, "--address", address, cwd=tmp_path, timeout=30)
    assert_one_error_line(r, want)
    assert not contacted(sock)


@pytest.mark.parametrize(("store", "want"), [
    ("a\tb", "store 'a\\tb' holds a control character"),
    (" s3://b/x", "has spaces around it"),
    ("user:PlantedPw12345@host/x", "is a URL with a password but no scheme"),
    ("s3://PlantedUser12345@b/x", "--store 's3://***@b/x' holds a credential"),
    ("s3://b/x?secret_key=PlantedPw12345",
     "--store 's3://b/x?secret_key=***' holds a credential"),
])
def test_submit_checks_the_store_as_run_does_before_any_contact(
        store: str, want: str, head: tuple[str, socket.socket], tmp_path: Path) -> None:
    """`llem run` refused these stores before Ray; submit went on to the cluster (and a
    credential in the store reached the job's command line, which Ray shows)."""
    address, sock = head
    (tmp_path / "grid.yaml").write_text(GRID)
    r = run_cli("submit", "grid.yaml", "--address", address, "--store", store, cwd=tmp_path,
                timeout=30)
    assert_one_error_line(r, want, unseen="Planted")
    assert not contacted(sock)
    if "credential" not in want:  # the very line `llem run` gives
        ran = run_cli("run", "grid.yaml", "--dry-run", "--store", store, cwd=tmp_path,
                      timeout=30)
        assert_one_error_line(ran, want, unseen="Planted")
