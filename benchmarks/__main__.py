"""`make bench`: every benchmark, each printing ratios measured side by side in one run.

    python -m benchmarks                    # all, then one table of every figure
    python -m benchmarks lazy query         # some of them
    python -m benchmarks --json out.json    # the figures as JSON too

A benchmark is a module with main() -> list[Figure]; one that fails is reported in the
table and the others still run (exit status 1 at the end).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
import traceback

from benchmarks.figures import Figure, dump, render

# Issue order: 1+2 makespan and per-job overhead, 3 reuse, 4 lazy, 5 query, 6 overhead,
# 7 server mode's load client, 8 window_share (the measurement windows' share of GPU time).
# makespan (the packed campaign on skewed groups) is the cluster work's own benchmark; scale
# and store_scale are issue 20's (the scheduler simulated to 10,000 GPUs, the store of a
# large campaign). benchmarks.ray_slots (32 slots of a multi-node Ray) runs on request: ~3
# min here, which would take make bench past 10.
BENCHMARKS = [name for name in ("makespan_compare", "makespan", "scale", "reuse", "lazy",
                                "query", "store_scale", "overhead_cpu", "server_client",
                                "window_share")
              if importlib.util.find_spec(f"benchmarks.{name}") is not None]


def main(argv: list[str]) -> int:
    from rich.console import Console

    json_path = None
    if "--json" in argv:
        i = argv.index("--json")
        json_path = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    figures: list[Figure] = []
    failed: list[str] = []
    t0 = time.perf_counter()
    for name in argv or BENCHMARKS:
        module = importlib.import_module(name if "." in name else f"benchmarks.{name}")
        print(f"\n== {module.__name__}: {(module.__doc__ or '').strip().splitlines()[0]}",
              flush=True)
        start = time.perf_counter()
        try:
            figures.extend(module.main() or [])
        except Exception:
            traceback.print_exc()
            failed.append(module.__name__)
        print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
    console = Console(width=max(Console().width, 150))
    console.print()
    console.print(render(figures, f"llem benchmarks ({time.perf_counter() - t0:.0f} s)"))
    for name in failed:
        console.print(f"[red]FAILED[/red] {name} (traceback above)")
    if json_path:
        dump(figures, json_path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
