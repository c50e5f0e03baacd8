"""What `llem run` prints, as a user sees it: the CLI as a subprocess (on a terminal where that
matters: a pseudo-terminal), noop jobs on an embedded Ray, the numbers checked against the
store it wrote. The progress says what happens before the first result and the time left
after it; Ctrl-C counts the jobs not run; the results table is per configuration with CIs;
`-q` keeps one line; the commands it suggests run; `llem report --png` without a Chrome
still writes the page."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shlex
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from llem.store.store import Store
from tests.support.cli import run_cli
from tests.support.paths import LLEM, ROOT

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-Za-z])")
BOX = set("│┃━─┏┓┗┛┡┩╇┳┻┼╸╺")
NOOP = """\
name: {name}
models: [m]
backends: [noop]
cycles: {cycles}
grid: {grid}
dataset: {{num_prompts: 2}}
measurement: {{warmup_requests: 0, thermal_gaps: false}}
resources: {{gpus_per_job: 0}}
noop: {noop}
"""


def write_grid(folder: Path, name: str, cycles: int, grid: str, noop: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(NOOP.format(name=name, cycles=cycles, grid=grid, noop=noop))
    return path


def run_tty(*args: str, columns: int = 100, stop_when: Callable[[], bool] | None = None,
            timeout: float = 300) -> tuple[int, str]:
    """The CLI on a terminal `columns` wide (a pty for stdin, stdout and stderr): its exit
    status and what it wrote. stop_when: SIGINT (Ctrl-C) once it returns True."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    p = subprocess.Popen([*LLEM, *args], cwd=ROOT, stdin=slave, stdout=slave, stderr=slave,
                         env=env, start_new_session=True)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    chunk = b""
                out += chunk
                if not chunk and p.poll() is not None:
                    break
            elif p.poll() is not None:
                break
            if stop_when is not None and stop_when():
                p.send_signal(signal.SIGINT)
                stop_when = None
            assert time.monotonic() < deadline, out.decode(errors="replace")[-3000:]
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    return p.returncode, out.decode(errors="replace")


def screen_lines(raw: str) -> list[str]:
    """The terminal's lines, escape sequences dropped (each progress frame a line)."""
    text = ANSI.sub("", raw).replace("\r\n", "\n")
    return [ln for part in text.split("\n") for ln in part.split("\r") if ln.strip()]


def summary_counts(text: str) -> dict[str, int]:
    m = re.search(r"campaign summary: (\d+) jobs?: (\d+) ok, (\d+) failed"
                  r"(?:, (\d+) not run)?(?:[^;]*skipped (\d+) jobs?)?", text)
    assert m, text[-3000:]
    total, ok, failed, not_run, skipped = (int(g or 0) for g in m.groups())
    return {"total": total, "ok": ok, "failed": failed, "not_run": not_run,
            "skipped": skipped}


def query(store: Path, sql: str) -> list[dict]:
    r = run_cli("query", sql, "--store", str(store), "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_ctrl_c_counts_what_did_not_run_on_a_terminal(llem_cache: Path, tmp_path: Path) -> None:
    """16 jobs of ~1 s; Ctrl-C once two are stored: the bar stays where it was, the summary
    says how many ran and how many did not, and the store holds exactly the ones that ran.
    Before the first result the bar says what is happening; after it, the time left."""
    grid = write_grid(tmp_path, "stop", 4, "{batch_size: [1, 2, 4, 8], max_new_tokens: 4}",
                      "{request_s: 0.5, load_s: 1.0}")
    root = tmp_path / "store"
    store = Store(root)

    def two_stored() -> bool:
        if len(store.files("runs")) < 2:
            return False
        time.sleep(0.3)  # a refresh of the bar after the second result
        return True

    rc, raw = run_tty("run", str(grid), "--store", str(root), columns=100,
                      stop_when=two_stored)
    lines = screen_lines(raw)
    text = "\n".join(lines)
    assert rc == 130, text[-3000:]
    assert "Traceback" not in text
    assert all(len(ln) <= 100 for ln in lines), max(lines, key=len)
    # what happened before the first result, then the time left once a job had finished
    assert "starting Ray on this machine" in text
    # a status shown for about a second: on a busy machine the bar may redraw only once
    assert "worker 0: loading m (noop" in text or "starting worker 0 (noop)" in text
    assert re.search(r"ETA \d+:\d\d:\d\d", text), text[-3000:]
    counts = summary_counts(text)
    stored = query(root, "SELECT count(*) AS n FROM runs WHERE status = 'ok'")[0]["n"]
    assert counts["total"] == 16 and counts["failed"] == 0 and counts["skipped"] == 0
    assert counts["ok"] == stored >= 2
    assert counts["not_run"] == 16 - stored > 0
    assert "(interrupted)" in text and f"{stored} results stored in this session" in text
    final = [ln for ln in lines if ln.startswith("stop ") and "interrupted" in ln]
    assert final and f"{stored}/16" in final[-1], text[-3000:]  # not forced to 16/16
    assert not any("16/16" in ln for ln in lines)


@pytest.fixture(scope="module")
def streamed(llem_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """2 batch sizes x 2 cycles of streamed noop jobs, run as a pipe sees it."""
    folder = tmp_path_factory.mktemp("streamed")
    grid = write_grid(folder, "table", 2, "{batch_size: [1, 2], max_new_tokens: 4, "
                      "streaming: true}", "{token_s: 0.002}")
    store = folder / "store"
    r = run_cli("run", str(grid), "--store", str(store))
    assert r.returncode == 0, r.stderr[-3000:]
    return {"grid": grid, "store": store, "run": r, "folder": folder}


def table_of(stdout: str) -> tuple[str, list[str], list[list[str]]]:
    """A plain table: its title, header cells and rows (cells apart by 2+ spaces)."""
    lines = stdout.splitlines()
    title = lines[0]
    rows = []
    for ln in lines[2:]:
        if not ln.strip() or ln.startswith(("J/token", "results:", "(")):
            break
        rows.append(re.split(r"\s{2,}", ln.strip()))
    return title, re.split(r"\s{2,}", lines[1].strip()), rows


def test_results_table_per_configuration(streamed: dict) -> None:
    r, store = streamed["run"], streamed["store"]
    # a pipe: plain text, no colours or box art, and the table on stdout
    for out in (r.stdout, r.stderr):
        assert not BOX & set(out) and "\x1b[" not in out, out
        assert all(ln == ln.rstrip() for ln in out.splitlines())
    assert "up to 4 jobs (2 points x 2 cycles, order interleaved)" in r.stderr
    assert "starting Ray on this machine" in r.stderr and "loading m (noop" in r.stderr
    counts = summary_counts(r.stderr)
    assert (counts["total"], counts["ok"], counts["not_run"]) == (4, 4, 0)
    assert "campaign summary" not in r.stdout

    title, header, rows = table_of(r.stdout)
    assert title == "table: mean ± 95% CI over 2 cycles, per configuration"
    # the swept parameter only (backend, model, max_new_tokens are the same everywhere)
    energy = "J/token" in header
    assert header == ["batch_size", "cycles", "tok/s", *(["J/token"] if energy else []),
                      "latency p50 (ms)", "latency p99 (ms)", "TTFT p50 (ms)",
                      "TTFT p99 (ms)"]
    assert [row[:2] for row in rows] == [["1", "2"], ["2", "2"]]
    for row in rows:
        assert all(re.fullmatch(r"\d+(\.\d+)? ± \d+(\.\d+)?", c) for c in row[2:]), row
    # the reason J/token is missing: once, below the table, not per row
    reasons = [ln for ln in r.stdout.splitlines() if ln.startswith("J/token not measured")]
    assert len(reasons) == (0 if energy else 1), r.stdout
    # the numbers are the store's: mean and Student-t half-width over the 2 cycles
    (want,) = query(store, "SELECT avg(tokens_per_s) AS m, stddev_samp(tokens_per_s) AS s, "
                    "avg(ttft_p99_s) AS t FROM runs WHERE campaign = 'table' AND batch_size = 1")
    mean, ci = (float(x) for x in rows[0][2].split(" ± "))
    decimals = len(rows[0][2].split(" ± ")[0].partition(".")[2])
    assert mean == pytest.approx(want["m"], abs=0.51 * 10**-decimals)
    assert ci == pytest.approx(12.706 * want["s"] / 2**0.5, abs=0.51 * 10**-decimals)
    assert float(rows[0][-1].split(" ± ")[0]) == pytest.approx(want["t"] * 1e3, rel=0.01)
    # where the results are, and the next commands: they run as printed
    lines = r.stdout.splitlines()
    assert f"results: {store} (campaign table)" in lines
    nxt = lines[lines.index("next:") + 1:]
    assert nxt[0].startswith(f"  llem report table --store {store} -o table.html")
    (q,) = [ln for ln in nxt if ln.startswith("  llem query ")]
    shown = run_cli(*shlex.split(q)[1:], "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert sorted(row["batch_size"] for row in json.loads(shown.stdout)) == [1, 2]


def test_quiet_keeps_the_summary_line(streamed: dict) -> None:
    """Run again with -q: everything is in the store, nothing runs, one line is printed."""
    r = run_cli("run", str(streamed["grid"]), "--store", str(streamed["store"]), "-q")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == ""
    (line,) = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert line.startswith("campaign summary: 4 jobs: 0 ok, 0 failed, skipped 4 jobs already "
                           "in the store (status ok); 0 model loads on 0 workers; 0 tokens;")


def test_one_cycle_shows_single_values_and_counts_in_the_singular(llem_cache: Path,
                                                                 tmp_path: Path) -> None:
    store = tmp_path / "s"
    r = run_cli("run", "--model", "m", "--backend", "noop", "-n", "2", "--max-new-tokens",
                "2", "--cycles", "1", "--gpus", "0", "--no-gaps", "--name", "single",
                "--store", str(store))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "single: up to 1 job (1 point x 1 cycle, order interleaved)" in r.stderr
    assert "campaign summary: 1 job: 1 ok, 0 failed" in r.stderr
    assert re.search(r"; (1 model load|\d+ model loads) on 1 worker; 4 tokens;", r.stderr)
    title, header, rows = table_of(r.stdout)
    assert title == "single: one cycle per configuration (no CI)"
    assert header[:3] == ["backend", "model", "cycles"]  # nothing varies: what ran
    (row,) = rows
    assert row[:3] == ["noop", "m", "1"] and "±" not in r.stdout
    (tps,) = query(store, "SELECT tokens_per_s AS t FROM runs")
    assert float(row[3]) == pytest.approx(tps["t"], rel=0.01)


def test_results_csv_and_timestamps(streamed: dict) -> None:
    """`llem results`: timestamps to the second; --format csv ends lines with \\n."""
    store = str(streamed["store"])
    table = run_cli("results", "--store", store)
    assert table.returncode == 0, table.stderr
    stamps = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\S*", table.stdout)
    assert len(stamps) == 2 and all(s.endswith("+00:00") for s in stamps), table.stdout
    assert not re.search(r":\d\d\.\d", table.stdout)
    rows = json.loads(run_cli("results", "--store", store, "--format", "json").stdout)
    assert [r["campaign"] for r in rows] == ["table"]
    assert "." not in rows[0]["first"] and "." not in rows[0]["last"]
    raw = subprocess.run([*LLEM, "results", "--store", store, "--format", "csv"], cwd=ROOT,
                         capture_output=True, timeout=120, check=False)
    assert raw.returncode == 0 and b"\r" not in raw.stdout
    assert raw.stdout.startswith(b"campaign,ok,failed,configs,energy_j,first,last\ntable,4,0,")


def test_report_without_chrome_writes_the_page_then_says_how(streamed: dict) -> None:
    folder = streamed["folder"]
    page, pngs = folder / "report.html", folder / "png"
    r = run_cli("report", "table", "--store", str(streamed["store"]), "-o", str(page),
                "--png", str(pngs), env={"BROWSER_PATH": str(folder / "no-chrome")})
    assert r.returncode == 1, r.stdout + r.stderr
    assert page.is_file() and page.stat().st_size > 100_000  # the page, plotly inlined
    assert r.stdout.startswith(f"wrote {page} (2 configurations, ")
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: --png: no PNG written") and "plotly_get_chrome" in line
    assert not pngs.exists() or not list(pngs.glob("*.png"))
    assert not list(folder.glob(".llem-png-*"))  # no staging folder left
