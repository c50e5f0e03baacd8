"""How the commands print, as a user sees them (the CLI as a subprocess, no Ray): on a
terminal, tables fit its width; piped, output is plain text (no colours, no box art); CSV
lines end with \\n; an empty query says so; counts are in the singular when there is one."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.paths import LLEM, ROOT

ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-Za-z])")
BOX = set("│┃━─┏┓┗┛┡┩╇┳┻┼")
ONE_JOB = """\
name: one
models: [m]
backends: [noop]
grid: {batch_size: 1, max_new_tokens: 2}
dataset: {num_prompts: 2}
resources: {gpus_per_job: 0}
"""


def on_terminal(*args: str, columns: int, timeout: float = 120) -> tuple[int, list[str]]:
    """The CLI with a terminal `columns` wide as stdout and stderr: exit status and the
    lines it showed (escape sequences dropped)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    p = subprocess.Popen([*LLEM, *args], cwd=ROOT, stdin=slave, stdout=slave, stderr=slave,
                         env=env)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the command exited and closed the terminal
                    chunk = b""
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    text = ANSI.sub("", out.decode(errors="replace")).replace("\r\n", "\n")
    return p.returncode, [ln for ln in text.split("\n") if ln.strip()]


def plain(text: str) -> None:
    assert not BOX & set(text), text
    assert "\x1b[" not in text
    assert all(ln == ln.rstrip() for ln in text.splitlines())


def test_tables_follow_a_100_column_terminal(tmp_path: Path) -> None:
    grid = tmp_path / "one.yaml"
    grid.write_text(ONE_JOB)
    for args in (["doctor", "--quick"], ["run", str(grid), "--dry-run", "--store",
                                         str(tmp_path / "s")], ["env", "list", "--quick"]):
        rc, lines = on_terminal(*args, columns=100)
        assert rc == 0, "\n".join(lines)
        assert lines and all(len(ln) <= 100 for ln in lines), max(lines, key=len)
        assert any(BOX & set(ln) for ln in lines)  # a terminal gets the boxes
    rc, lines = on_terminal("doctor", "--quick", columns=160)
    assert max(len(ln) for ln in lines) > 100  # the width is the terminal's, not fixed


def test_piped_output_is_plain(tmp_path: Path) -> None:
    grid = tmp_path / "one.yaml"
    grid.write_text(ONE_JOB)
    doctor = run_cli("doctor", "--quick")
    assert doctor.returncode == 0, doctor.stderr
    plain(doctor.stdout)
    lines = doctor.stdout.splitlines()
    assert lines[0] == "llem doctor" and re.split(r"\s{2,}", lines[1]) == \
        ["area", "item", "state", "found", "fix"]
    assert any(re.match(r"ray\s{2,}ray\s{2,}ok\s{2,}ray \d", ln) for ln in lines), lines
    dry = run_cli("run", str(grid), "--dry-run", "--store", str(tmp_path / "s"))
    assert dry.returncode == 0, dry.stderr
    plain(dry.stdout)
    envs = run_cli("env", "list", "--quick")
    assert envs.returncode == 0, envs.stderr
    plain(envs.stdout)
    assert re.search(r"^noop\s{2,}current\s{2,}ready\s", envs.stdout, re.M), envs.stdout


def test_counts_are_singular_for_one(tmp_path: Path) -> None:
    grid = tmp_path / "one.yaml"
    grid.write_text(ONE_JOB)
    r = run_cli("run", str(grid), "--dry-run", "--store", str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr
    assert "1 point x 1 cycle = 1 job, order interleaved, in 1 load group (one model load " \
        "each)" in r.stdout
    assert "node this machine: 0 GPUs" in r.stdout
    assert "store " in r.stdout and "0 of 1 job already done" in r.stdout
    for wrong in ("1 points", "1 cycles", "1 jobs", "1 load groups"):
        assert wrong not in r.stdout


def test_csv_lines_end_with_newline_and_an_empty_result_says_so(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "runs").mkdir(parents=True)  # a store nothing was written to yet
    raw = subprocess.run([*LLEM, "query", "SELECT 1 AS a, 'x,y' AS b UNION ALL SELECT 2, 'z' "
                          "ORDER BY a", "--store", str(store), "--format", "csv"], cwd=ROOT,
                         capture_output=True, timeout=120, check=False)
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout == b'a,b\n1,"x,y"\n2,z\n'
    empty = run_cli("query", "SELECT * FROM runs", "--store", str(store))
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout == "0 rows\n"
    one = run_cli("query", "SELECT 42 AS answer", "--store", str(store))
    plain(one.stdout)
    assert one.stdout.split() == ["answer", "42"]
