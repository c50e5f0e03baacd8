"""Query: a DuckDB aggregate over a store of 1e6 request rows, before and after compaction.

The store is written through llem's own path (harness rows -> Store.write_result:
one Parquet file per job and table, staged and renamed), as the driver writes it: 1,000
jobs x 1,000 streamed requests with per-token times. The aggregate runs through llem's
views over those per-job files, then again after llem's compaction (llem.store.compact,
timed: one file per table). Reference measured in the same run: the same aggregate with
pyarrow alone (Store.read + Table.group_by) over the per-job files.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.figures import Figure

SQL = """
SELECT q.job_id, any_value(r.batch_size) AS batch_size, count(*) AS requests,
       median(q.latency_s) AS latency_p50_s, quantile_cont(q.ttft_s, 0.99) AS ttft_p99_s,
       avg(q.itl_mean_s) AS itl_mean_s, sum(q.output_tokens) AS output_tokens
FROM requests q JOIN runs r USING (campaign, job_id, cycle)
WHERE r.status = 'ok'
GROUP BY q.job_id
"""


def results(jobs: int, requests: int) -> Any:
    """Yield `jobs` job results of `requests` streamed requests each (8 tokens apiece).

    The first job really runs: llem's harness (JobRunner) over the noop backend, which
    streams token times. The other jobs are copies of its rows under their own job_id
    (building rows is the worker's cost, not the store's, and is kept out of the timing).
    """
    from llem.config.grid import iter_jobs
    from llem.config.load import load_text
    from llem.harness.runner import JobRunner
    from llem.store.run_row import Result

    loaded = load_text(f"""
name: bench-query
max_points: {max(jobs, 1)}
models: [m]
backends: [noop]
grid: {{batch_size: [{", ".join(str(b + 1) for b in range(jobs))}], max_new_tokens: 8,
        streaming: true}}
dataset: {{num_prompts: {requests}}}
measurement: {{warmup_requests: 0, thermal_gaps: false}}
""")
    template: Result | None = None
    for job in iter_jobs(loaded):
        if template is None:
            p = job.point
            runner = JobRunner(p.backend, {"model": p.model, "dtype": p.dtype,
                                           "engine": dict(p.engine), "gpus": 0}, 0)
            prompts = [f"prompt {i} " + "word " * (i % 50) for i in range(requests)]
            template = runner.run(job.payload(), prompts)
            assert template.run.status == "ok", template.run.error
            assert len(template.requests) == requests
            yield template
            continue
        run = dataclasses.replace(template.run, job_id=job.job_id,
                                  batch_size=job.point.batch_size)
        reqs = [{**r, "job_id": job.job_id} for r in template.requests]
        yield Result(run, reqs)


def write_store(root: Path, jobs: int, requests: int) -> float:
    """Write the store at root with Store.write_result (one file per job and table);
    returns the seconds spent writing (building the rows is left out)."""
    from llem.store.store import Store

    store = Store(root)
    took = 0.0
    for result in results(jobs, requests):
        t0 = time.perf_counter()
        store.write_result(result)
        took += time.perf_counter() - t0
    return took


def compact_store(root: Path) -> tuple[float, int, int]:
    """llem's compaction of the store (the Python API `llem compact` calls): seconds, files
    merged and files written."""
    from llem.store.compact import compact
    from llem.store.store import Store

    t0 = time.perf_counter()
    done = compact(Store(root))
    took = time.perf_counter() - t0
    return took, sum(c.sources for c in done), sum(len(c.written) for c in done)


def query_duckdb(root: Path) -> tuple[float, int]:
    """llem's DuckDB views (llem.store.query.connect) over the store at root, then the aggregate;
    the better of two runs (the second finds the files in the OS cache)."""
    from llem.store.query import connect
    from llem.store.store import Store

    best: tuple[float, int] | None = None
    for _ in range(2):
        t0 = time.perf_counter()
        con = connect(Store(root))
        try:
            rows = con.execute(SQL).fetchall()
        finally:
            con.close()
        took = (time.perf_counter() - t0, len(rows))
        best = took if best is None or took < best else best
    assert best is not None
    return best


def query_pyarrow(root: Path) -> tuple[float, int]:
    """The same aggregate with pyarrow alone: read both tables, join, group."""
    import pyarrow.compute as pc

    from llem.store.store import Store

    t0 = time.perf_counter()
    store = Store(root)
    runs = store.read("runs", columns=["campaign", "job_id", "cycle", "status", "batch_size"])
    runs = runs.filter(pc.equal(runs["status"], "ok"))
    q = store.read("requests", columns=["campaign", "job_id", "cycle", "latency_s", "ttft_s",
                                        "itl_mean_s", "output_tokens"])
    joined = q.join(runs, ["campaign", "job_id", "cycle"])
    out = joined.group_by("job_id").aggregate([
        ("batch_size", "max"), ("latency_s", "count"),
        ("latency_s", "approximate_median"), ("ttft_s", "tdigest", pc.TDigestOptions(q=0.99)),
        ("itl_mean_s", "mean"), ("output_tokens", "sum")])
    return time.perf_counter() - t0, out.num_rows


def run(jobs: int = 1000, requests: int = 1000) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="llem-bench-query-") as tmp:
        root = Path(tmp) / "store"
        write_s = write_store(root, jobs, requests)
        duck_s, n = query_duckdb(root)
        arrow_s, m = query_pyarrow(root)
        compact_s, merged, written = compact_store(root)
        compacted_s, k = query_duckdb(root)
    assert n == m == k == jobs, (n, m, k, jobs)
    rows = jobs * requests
    print(f"{rows:,} request rows in {jobs} jobs: llem store write {write_s:.1f} s "
          f"({write_s / jobs * 1e3:.1f} ms/job); llem compact {compact_s:.1f} s "
          f"({merged} files -> {written})")
    print(f"aggregate (views + query): DuckDB per-job files {duck_s:.3f} s, compacted "
          f"{compacted_s:.3f} s; pyarrow per-job files {arrow_s:.3f} s")
    note = f"{rows:.0e} rows".replace("e+0", "e")
    return [
        Figure("5 query", "DuckDB aggregate / pyarrow, per-job files", duck_s, arrow_s, "s",
               "DuckDB", "pyarrow", None, f"{note}, {jobs} jobs"),
        Figure("5 query", "DuckDB aggregate, compacted / per-job files", compacted_s,
               duck_s, "s", "compacted", "per job", "value < 1",
               f"{note}, after `llem compact`"),
        Figure("5 query", "llem compact / store write (per-job files)", compact_s, write_s,
               "s", "compact", "write", None, f"{note}, {merged} files -> {written}"),
    ]


def main() -> list[Figure]:
    return run()


if __name__ == "__main__":
    main()
