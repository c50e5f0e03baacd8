"""The store at scale: a campaign of 20,000 jobs, listed, resume-checked and queried before
and after `llem compact`.

The rows are written as the driver writes them (llem.store.writer.StoreWriter, one file per
job and table), noop-sized: one runs row and one request row per job, copies of one job
really run through llem's harness (benchmarks.query.results). Then, each in a fresh
process as a user meets it:

    llem results                 list the campaigns with their counts (the CLI)
    resume check                 Store.done(campaign): what the driver reads at start to skip
                                 stored jobs; its time and the process's peak RSS (VmHWM),
                                 beside the same process's RSS before the read
    llem query "... GROUP BY"    a group-by over runs (the CLI)

before and after `llem compact` (timed, the CLI too).

    python -m benchmarks.store_scale            # 500 jobs (make bench, ~1 min)
    python -m benchmarks.store_scale 20000      # the issue's size
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.figures import Figure

CAMPAIGN = "bench-query"  # benchmarks.query.results' grid name
GROUP_BY = ("SELECT model, status, count(*) AS n, avg(output_tokens) AS tokens, "
            "sum(energy_j) AS energy FROM runs GROUP BY ALL")
RESUME = """
import resource, sys, time
from llem.store.store import Store
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
store = Store(sys.argv[1])
before = hwm()
t0 = time.perf_counter()
done = store.done(sys.argv[2])
print(len(done), time.perf_counter() - t0, before, hwm())
"""


def write(root: Path, jobs: int) -> float:
    """jobs noop-sized results through the driver's writer thread; seconds until all are
    on disk."""
    from benchmarks.query import results
    from llem.store.store import Store
    from llem.store.writer import StoreWriter

    it = results(jobs, 1)
    first = next(it)  # the one job really run: kept out of the timing
    writer = StoreWriter(Store(root))
    t0 = time.perf_counter()
    writer.put(first)
    for r in it:
        writer.put(r)
    writer.close()
    writer.check()
    return time.perf_counter() - t0


def timed(args: list[str]) -> tuple[float, str]:
    """A fresh process (the CLI or Python), its wall time and stdout."""
    t0 = time.perf_counter()
    p = subprocess.run(args, capture_output=True, text=True, check=False)
    took = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr[-2000:]
    return took, p.stdout


def measure(root: Path, jobs: int) -> dict[str, Any]:
    llem = [sys.executable, "-m", "llem"]
    out: dict[str, Any] = {}
    out["list_s"], listed = timed([*llem, "results", "--store", str(root), "--format", "csv"])
    assert f"{CAMPAIGN},{jobs}," in listed, listed[:500]
    took, text = timed([sys.executable, "-c", RESUME, str(root), CAMPAIGN])
    n, read_s, before, peak = text.split()
    assert int(n) == jobs, (n, jobs)
    out.update(resume_process_s=took, resume_s=float(read_s), rss_before_mb=float(before),
               rss_peak_mb=float(peak))
    out["query_s"], rows = timed([*llem, "query", GROUP_BY, "--store", str(root),
                                  "--format", "csv"])
    assert f",ok,{jobs}," in rows, rows[:500]
    return out


def files(root: Path) -> int:
    return sum(1 for p in root.rglob("*.parquet"))


def run(jobs: int = 500) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="llem-bench-store-") as tmp:
        root = Path(tmp) / "store"
        write_s = write(root, jobs)
        n_files = files(root)
        before = measure(root, jobs)
        compact_s, _ = timed([sys.executable, "-m", "llem", "compact", str(root)])
        after = measure(root, jobs)
        r = {"jobs": jobs, "write_s": write_s, "files": n_files, "files_after": files(root),
             "compact_s": compact_s, "before": before, "after": after}
    b, a = before, after
    print(f"  {jobs:,} jobs written in {write_s:.1f} s ({write_s / jobs * 1e3:.2f} ms/job, "
          f"{n_files:,} files); llem compact {compact_s:.1f} s -> {r['files_after']} files")
    for what, key in (("llem results", "list_s"), ("resume check (process)",
                                                    "resume_process_s"),
                      ("  of which Store.done", "resume_s"), ("llem query group-by",
                                                              "query_s")):
        print(f"  {what:<24} per-job files {b[key]:7.2f} s   compacted {a[key]:7.2f} s")
    print(f"  resume check peak RSS: per-job files {b['rss_peak_mb']:.0f} MB, compacted "
          f"{a['rss_peak_mb']:.0f} MB (the process before the read: {b['rss_before_mb']:.0f}"
          " MB)")
    return r


def figures(r: dict[str, Any]) -> list[Figure]:
    b, a, note = r["before"], r["after"], f"{r['jobs']:,} jobs"
    return [
        Figure("5 store", "llem results, compacted / per-job files", a["list_s"], b["list_s"],
               "s", "compacted", "per job", None, note),
        Figure("5 store", "resume check (Store.done), compacted / per-job files",
               a["resume_s"], b["resume_s"], "s", "compacted", "per job", None,
               f"{note}; process {b['resume_process_s']:.1f} / {a['resume_process_s']:.1f} s"),
        Figure("5 store", "llem query group-by, compacted / per-job files", a["query_s"],
               b["query_s"], "s", "compacted", "per job", None, note),
        Figure("5 store", "resume check peak RSS / the process before the read",
               b["rss_peak_mb"], b["rss_before_mb"], "MB", "peak", "before", None,
               f"{note}, per-job files; compacted {a['rss_peak_mb']:.0f} MB"),
        Figure("5 store", "llem compact / store write", r["compact_s"], r["write_s"], "s",
               "compact", "write", None, f"{note}, {r['files']:,} files -> "
               f"{r['files_after']}"),
    ]


def main(jobs: int = 500) -> list[Figure]:
    return figures(run(jobs))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
