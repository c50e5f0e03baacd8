"""A store writer to kill: writes one noop result (a 2000-row requests file, then its runs
row) per cycle until killed, printing each cycle it finished. The tables are built once and
only their cycle column changes, so nearly all its time is spent in Store._write (temp file,
then rename): where a kill must never leave a partial file. Used by test_faults_kill.py."""

from __future__ import annotations

import itertools
import sys

import pyarrow as pa

from llem.config.grid import iter_jobs
from llem.config.load import load_text
from llem.harness.runner import JobRunner
from llem.store.schema import to_table
from llem.store.store import Store

GRID = """
name: writer
models: [m]
backends: [noop]
grid: {batch_size: 64, max_new_tokens: 4}
dataset: {num_prompts: 2000}
measurement: {warmup_requests: 0, thermal_gaps: false}
"""


def main(root: str, start: int) -> None:
    job = next(iter_jobs(load_text(GRID)))
    runner = JobRunner("noop", {"model": "m", "dtype": "auto", "engine": {}, "gpus": 0}, 0)
    result = runner.run(job.payload(), [f"prompt {i}" for i in range(2000)])
    run = result.run
    tables = {"requests": to_table("requests", result.requests),
              "runs": to_table("runs", [run])}
    store = Store(root)
    for cycle in itertools.count(start):
        for name, t in tables.items():  # requests first, runs (the done mark) last
            t = t.set_column(t.schema.get_field_index("cycle"), "cycle",
                             pa.array([cycle] * t.num_rows, pa.int32()))
            store._write(t, store.file_for(name, str(run.campaign), str(run.job_id), cycle))
        print(cycle, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
