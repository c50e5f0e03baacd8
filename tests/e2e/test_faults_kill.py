"""Process faults: kill -9 the driver mid-write, again and again; the store always reads,
with no partial rows, while DuckDB reads it concurrently; every rerun resumes.

The drivers are real `llem run` processes joining one local Ray (started here, so each run
costs a connect, not a Ray start); jobs use the noop backend so writes are continuous. A
driver life costs seconds (Ray connect, a worker process), so the suite kills 6 of them
(LLEM_KILLS=20 for the full proof) and kills the store writer itself (tests/support/fault_writer.py,
the code path the driver writes with) 10 times (LLEM_WRITER_KILLS=20 or more for the full
proof), each while it writes 2000-row files.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llem.store.doctor import inspect
from llem.store.query import run_sql
from llem.store.store import Store

# imported here, not inside a test: compiling a module while Ray's threads run can trip
# CPython 3.11's "AST constructor recursion depth mismatch"
from tests.support.faults import PLANTED, grep_tree
from tests.support.paths import ROOT

KILLS = int(os.environ.get("LLEM_KILLS", "6"))  # driver lives; 20 for the full proof
WRITER_KILLS = int(os.environ.get("LLEM_WRITER_KILLS", "10"))  # 20 or more for the full proof
GRID = """
name: kill9
models: [m]
backends: [noop]
cycles: {cycles}
grid:
  batch_size: [1, 2, 4, 8]
  max_new_tokens: 4
dataset: {{num_prompts: 4}}
measurement: {{warmup_requests: 0, thermal_gaps: false}}
noop: {{request_s: 0.01}}
"""


@pytest.fixture(scope="module")
def ray_address(llem_cache: Path):
    """A local Ray that `llem run --address` processes join. This process's auth settings
    are left alone (Ray reads them once per process: changing them here would break every
    later ray.init in the session); the drivers use the same mode and ~/.ray/auth_token."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=4, num_gpus=2, include_dashboard=False,
             namespace="llem", logging_level="ERROR", log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def driver(grid: Path, store: Path, address: str, *extra: str,
           env_extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = os.environ.get("RAY_AUTH_MODE") or "token"  # Ray 2.60's default
    env.update(env_extra or {})
    return subprocess.Popen([sys.executable, "-m", "llem", "run", str(grid), "--store",
                             str(store), "--address", address, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def check_store(store: Store, seen: set[str] | None = None) -> int:
    """Every data file reads; every ok run has all its request rows; no (job, cycle) twice."""
    seen = set() if seen is None else seen
    for table in ("runs", "requests"):
        for f in store.files(table):
            if f not in seen:
                pq.read_table(f)  # raises on a partial file
                seen.add(f)
    rows = run_sql(store, """
        WITH q AS (SELECT job_id, cycle, count(*) AS n FROM requests GROUP BY ALL)
        SELECT count(*) AS runs, count(DISTINCT (r.job_id, r.cycle)) AS keys,
          count(*) FILTER (r.status = 'ok' AND r.num_requests IS DISTINCT FROM q.n) AS short
        FROM runs r LEFT JOIN q USING (job_id, cycle)""").to_pylist()[0]
    assert rows["runs"] == rows["keys"], rows
    assert rows["short"] == 0, rows
    return int(rows["runs"])


@pytest.mark.slow
def test_kill_9_mid_write_loop(ray_address: str, tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID.format(cycles=40))  # 160 jobs: more than 20 short lives can store
    root = tmp_path / "store"
    store = Store(root)
    rng = random.Random(7)
    counts, reads, mid_write, seen = [0], 0, 0, set[str]()
    t0 = time.monotonic()
    for _ in range(KILLS):
        p = driver(grid, root, ray_address, "--quiet")
        deadline = time.monotonic() + 60
        while len(store.files("runs")) <= counts[-1] and time.monotonic() < deadline:
            assert p.poll() is None, p.communicate()[1][-2000:]
            # a reader while the campaign writes: never a partial file
            run_sql(store, "SELECT count(*) FROM runs UNION ALL SELECT count(*) FROM requests")
            reads += 1
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.15))
        p.send_signal(signal.SIGKILL)
        p.communicate()
        mid_write += bool(os.listdir(root / ".staging"))
        counts.append(check_store(store, seen))
        reads += 1
        assert counts[-1] >= counts[-2]
    killed_s = time.monotonic() - t0
    assert counts[-1] > counts[1] > 0, counts  # each life stored more; resume skipped the rest
    # the store reads as a whole, and a last run (resume) completes the campaign
    p = driver(grid, root, ray_address, "--quiet")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err.decode()[-3000:]
    assert check_store(store) == 160
    assert f"skipped {counts[-1]} jobs already in the store" in err.decode()
    report = inspect(store, clean=True, now=time.time() + 3600)
    # a kill between a job's requests file and its runs row leaves the requests of a
    # session that never finished it (readers skip them); the doctor removes them
    assert {f.kind for f in report.findings} <= {"staging", "orphan"}
    assert all(f.action == "removed" for f in report.findings)
    assert not inspect(store).findings and check_store(store) == 160
    print(f"\nkill -9 x{KILLS} in {killed_s:.1f}s: stored runs {counts[1:]}, concurrent reads "
          f"{reads} (0 errors), kills that left a temp file {mid_write}, staging temps cleaned "
          f"{len(report.findings)}")


def test_kill_9_store_writer_loop(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = Store(root)
    rng = random.Random(11)
    rows, mid_write, start, seen = [0], 0, 0, set[str]()
    t0 = time.monotonic()
    for _ in range(WRITER_KILLS):
        p = subprocess.Popen([sys.executable, str(ROOT / "tests" / "support" / "fault_writer.py"),
                              str(root), str(start)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=ROOT)
        assert p.stdout is not None
        line = p.stdout.readline()  # one result written: the writer is in its loop
        assert line, p.communicate()[1].decode()[-2000:]
        time.sleep(rng.uniform(0.05, 0.3))
        p.send_signal(signal.SIGKILL)
        p.communicate()
        mid_write += bool(os.listdir(root / ".staging"))
        rows.append(check_store(store, seen))
        assert rows[-1] > rows[-2]
        start = rows[-1] + 1000 * len(rows)  # fresh cycle numbers for the next life
    print(f"\nstore writer kill -9 x{WRITER_KILLS} in {time.monotonic() - t0:.1f}s: runs "
          f"{rows[-1]}, requests rows "
          f"{run_sql(store, 'SELECT count(*) AS n FROM requests').to_pylist()[0]['n']}"
          f", kills that left a temp file {mid_write}")


SLOW_GPU_GRID = """
name: stopme
models: [m]
backends: [noop]
cycles: 50
grid: {batch_size: 1, max_new_tokens: 4}
dataset: {num_prompts: 2}
measurement: {warmup_requests: 0, thermal_gaps: false}
resources: {gpus_per_job: 1}
noop: {request_s: 0.3, load_s: [0, 0.01]}
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_workers_and_frees_gpus(ray_address: str, tmp_path: Path,
                                             sig: signal.Signals) -> None:
    """Two GPU workers busy; a signal to the driver: it exits within a bounded time with a
    summary, and Ray's declared GPUs are all free again."""
    import ray

    grid = tmp_path / "grid.yaml"
    grid.write_text(SLOW_GPU_GRID)
    root = tmp_path / "store"
    total = ray.cluster_resources()["GPU"]
    p = driver(grid, root, ray_address)
    deadline = time.monotonic() + 120
    while ray.available_resources().get("GPU", 0) > 0 or not Store(root).files("runs"):
        assert p.poll() is None, p.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "the workers never took both GPUs"
        time.sleep(0.2)
    t0 = time.monotonic()
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    stopped_s = time.monotonic() - t0
    text = err.decode()
    assert p.returncode == 130, text[-3000:]
    assert "interrupted" in text and "Traceback" not in text, text[-3000:]
    assert "campaign summary" in text, text[-3000:]  # what was stored before the signal
    while ray.available_resources().get("GPU", 0) < total:
        assert time.monotonic() - t0 < 60, ray.available_resources()
        time.sleep(0.1)
    freed_s = time.monotonic() - t0
    stored = check_store(Store(root))
    assert 0 < stored < 100
    print(f"\n{sig.name}: driver exited in {stopped_s:.1f}s, {total:g} GPUs free after "
          f"{freed_s:.1f}s, {stored} results stored intact")
@pytest.mark.slow
def test_credentials_reach_cluster_workers_and_no_log(ray_address: str, tmp_path: Path) -> None:
    """HF_TOKEN set only where `llem run` runs (not on the cluster) reaches the workers as an
    actor argument: the failing job quotes it (masked); Ray's logs never hold it."""
    import ray
    from ray._private.worker import global_worker

    assert os.environ.get("HF_TOKEN") != PLANTED
    grid = tmp_path / "grid.yaml"
    grid.write_text("""
name: creds
models: [m]
backends: [noop]
grid: {batch_size: 1, max_new_tokens: 2, generate: {fail_env: HF_TOKEN}}
dataset: {num_prompts: 2}
measurement: {warmup_requests: 0, thermal_gaps: false}
""")
    p = driver(grid, tmp_path / "store", ray_address, "--verbose",
               env_extra={"HF_TOKEN": PLANTED})
    out, err = p.communicate(timeout=300)
    text = out.decode() + err.decode()
    assert "auth failed with ***" in text, text[-3000:]  # the worker had it
    assert "auth failed with None" not in text and PLANTED not in text
    assert grep_tree(tmp_path, PLANTED) == []
    session = Path(global_worker.node.get_session_dir_path())
    assert ray.is_initialized() and (session / "logs").is_dir()
    assert grep_tree(session, PLANTED) == []


def _until(p: subprocess.Popen[bytes], text: str, timeout: float = 120) -> str:
    """stderr lines of p until one holds text (the CLI prints one line per step off a
    terminal)."""
    assert p.stderr is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = p.stderr.readline().decode()
        assert line, "".join(seen)[-3000:]
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError("".join(seen)[-3000:])


def _stopped(p: subprocess.Popen[bytes], before: str) -> str:
    _, err = p.communicate(timeout=90)
    text = before + err.decode()
    assert p.returncode == 130, text[-3000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
    assert "campaign summary:" in text and "(interrupted)" in text, text[-3000:]
    return text


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_two_signals_end_with_the_summary(ray_address: str, tmp_path: Path,
                                          sig: signal.Signals) -> None:
    """Ctrl-C twice, or SIGTERM twice 0.3 s apart (a scheduler's impatience): the second
    does not cut the cleanup short: the summary line, exit 130, no traceback."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(SLOW_GPU_GRID.replace("resources: {gpus_per_job: 1}\n", ""))
    root = tmp_path / "store"
    p = driver(grid, root, ray_address)
    before = _until(p, "loading m")
    deadline = time.monotonic() + 60
    while not Store(root).files("runs"):
        assert p.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    p.send_signal(sig)
    time.sleep(0.3)
    p.send_signal(sig)
    _stopped(p, before)
    check_store(Store(root))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_while_ray_starts_ends_with_the_summary(tmp_path: Path,
                                                       sig: signal.Signals) -> None:
    """A signal while the embedded Ray starts (ray.init puts its own SIGTERM handler in
    place, which exited 15 with nothing printed; SIGHUP, a closed terminal, killed it with
    129): the summary line and exit 130."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(SLOW_GPU_GRID.replace("resources: {gpus_per_job: 1}\n", ""))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    p = subprocess.Popen([sys.executable, "-m", "llem", "run", str(grid), "--store",
                          str(tmp_path / "store")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    before = _until(p, "starting Ray")
    time.sleep(0.5)  # inside ray.init
    p.send_signal(sig)
    text = _stopped(p, before)
    assert "Ray ready" not in text, text[-3000:]
