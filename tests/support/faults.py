"""Helpers of the fault tests: a planted credential and where it ended up, and results of
real noop jobs to write into a store."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from llem.config.grid import iter_jobs
from llem.config.load import load_text
from llem.harness.runner import JobRunner
from llem.store.run_row import Result
from llem.store.store import Store

PLANTED = "Planted-7f3a9c2e-NotShapedLikeAToken"
HF_SHAPED = "hf_PlantedTokenDoNotLeak0123456789abcd"


def grep_tree(root: Path, needle: str) -> list[str]:
    """Files under root whose bytes (or, for Parquet, decoded values) contain needle."""
    hits = []
    for p in root.rglob("*"):
        if not p.is_file() or p.is_symlink():
            continue
        try:
            data = p.read_bytes()
        except OSError:
            continue
        if needle.encode() in data or (p.suffix == ".parquet" and
                                       needle in str(pq.read_table(p).to_pylist())):
            hits.append(str(p))
    return hits


def noop_store(path: Path, n_cycles: int = 2) -> Path:
    """A store at path holding campaign st's noop_results, as `llem run` writes one."""
    store = Store(path)
    for r in noop_results(n_cycles):
        store.write_result(r)
    return path


def noop_results(n_cycles: int = 1) -> list[Result]:
    loaded = load_text(f"""
name: st
models: [m]
backends: [noop]
cycles: {n_cycles}
grid: {{batch_size: [1, 2], max_new_tokens: 4}}
""")
    runner = JobRunner("noop", {"model": "m", "dtype": "auto", "engine": {}, "gpus": 0}, 0)
    return [runner.run(j.payload(), ["a b", "c d e"]) for j in iter_jobs(loaded)]
