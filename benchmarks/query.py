"""Query: a DuckDB aggregate over a store of 1e6 request rows, and the time to write it.

The store is written through llem's own path (harness rows -> Store.write_result:
one Parquet file per job and table, staged and renamed), as the driver writes it: 1,000
jobs x 1,000 streamed requests with per-token times. References measured in the same run:
the same rows written as one plain Parquet file (no per-job files, no atomic rename), and
the same aggregate computed with pyarrow alone (Store.read + Table.group_by).
"""

from __future__ import annotations

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
    from llem.config import load_text
    from llem.grid import iter_jobs
    from llem.harness import JobRunner

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
    template: dict[str, Any] | None = None
    for job in iter_jobs(loaded):
        if template is None:
            p = job.point
            runner = JobRunner(p.backend, {"model": p.model, "dtype": p.dtype,
                                           "engine": dict(p.engine), "gpus": 0}, 0)
            prompts = [f"prompt {i} " + "word " * (i % 50) for i in range(requests)]
            template = runner.run(job.payload(), prompts)
            assert template["run"]["status"] == "ok", template["run"]["error"]
            assert len(template["requests"]) == requests
            yield template
            continue
        run = {**template["run"], "job_id": job.job_id, "batch_size": job.point.batch_size}
        reqs = [{**r, "job_id": job.job_id} for r in template["requests"]]
        yield {"run": run, "requests": reqs, "samples": []}


def write_store(root: Path, jobs: int, requests: int) -> tuple[float, float]:
    """Write root/store with Store.write_result (one file per job and table), and the same
    rows as root/compact: one file per table, as a compaction of the campaign would leave.

    Returns (per-job store seconds, one-file-per-table seconds), each counting only writing.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llem.store import Store, to_table

    store = Store(root / "store")
    compact = root / "compact"
    name = "00000000-c0.parquet"  # named as llem names data files, so Store.files lists it
    llem_s = plain_s = 0.0
    writer = None
    runs: list[dict[str, Any]] = []
    try:
        for result in results(jobs, requests):
            t0 = time.perf_counter()
            store.write_result(result)
            llem_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            table: pa.Table = to_table("requests", result["requests"])
            if writer is None:
                part = compact / "requests" / f"campaign={result['run']['campaign']}"
                part.mkdir(parents=True)
                writer = pq.ParquetWriter(part / name, table.schema,
                                          compression="zstd")
            writer.write_table(table)
            runs.append(result["run"])
            plain_s += time.perf_counter() - t0
    finally:
        if writer is not None:
            t0 = time.perf_counter()
            writer.close()
            part = compact / "runs" / f"campaign={runs[0]['campaign']}"
            part.mkdir(parents=True)
            pq.write_table(to_table("runs", runs), part / name, compression="zstd")
            plain_s += time.perf_counter() - t0
    return llem_s, plain_s


def query_duckdb(root: Path) -> tuple[float, int]:
    """llem's DuckDB views (llem.query.connect) over the store at root, then the aggregate;
    the better of two runs (the second finds the files in the OS cache)."""
    from llem.query import connect
    from llem.store import Store

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

    from llem.store import Store

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
        root = Path(tmp)
        llem_w, plain_w = write_store(root, jobs, requests)
        duck_s, n = query_duckdb(root / "store")
        arrow_s, m = query_pyarrow(root / "store")
        compact_s, k = query_duckdb(root / "compact")
    assert n == m == k == jobs, (n, m, k, jobs)
    rows = jobs * requests
    print(f"{rows:,} request rows in {jobs} jobs: llem store write {llem_w:.1f} s "
          f"({llem_w / jobs * 1e3:.1f} ms/job), one file per table {plain_w:.1f} s")
    print(f"aggregate (views + query): DuckDB {duck_s:.3f} s, pyarrow {arrow_s:.3f} s; "
          f"DuckDB on one file per table {compact_s:.3f} s")
    note = f"{rows:.0e} rows".replace("e+0", "e")
    return [
        Figure("5 query", "DuckDB aggregate / pyarrow, per-job files", duck_s, arrow_s, "s",
               "DuckDB", "pyarrow", "value < 1", f"{note}, {jobs} jobs"),
        Figure("5 query", "DuckDB aggregate, one file per table / per-job files", compact_s,
               duck_s, "s", "1 file", "per job", "value < 1", f"{note}, as compacted"),
        Figure("5 query", "store write, per-job files / one file per table", llem_w, plain_w,
               "s", "llem store", "1 file", None, f"{note}, {jobs} jobs"),
    ]


def main() -> list[Figure]:
    return run()


if __name__ == "__main__":
    main()
