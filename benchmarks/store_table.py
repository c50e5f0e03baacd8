"""Print a campaign's per-configuration means from a store with pyarrow alone.

For machines without DuckDB (the GPU machines): python -m benchmarks.store_table STORE
"""

from __future__ import annotations

import sys
from collections import defaultdict
from statistics import mean, stdev

from llem.store.store import Store

COLS = ("tokens_per_s", "energy_per_token_j", "avg_power_w", "idle_power_w",
        "energy_net_per_token_j", "latency_p50_s", "energy_counter_to_sampled", "duration_s")


def main(root: str) -> None:
    t = Store(root).read("runs").to_pylist()
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in t:
        groups[(r["campaign"], r["backend"], r["model"], r["dtype"], r["batch_size"],
                r["max_new_tokens"], r["streaming"])].append(r)
    print("| campaign | backend | batch | new tok | cycles | status | gpu | "
          + " | ".join(COLS) + " | J/token CV |")
    print("|" + "---|" * (len(COLS) + 8))
    for key, rows in sorted(groups.items(), key=lambda kv: str(kv[0])):
        ok = [r for r in rows if r["status"] == "ok"]
        cells = []
        for c in COLS:
            vals = [r[c] for r in ok if r.get(c) is not None]
            cells.append(f"{mean(vals):.4g}" if vals else "-")
        jpt = [r["energy_per_token_j"] for r in ok if r.get("energy_per_token_j")]
        cv = f"{stdev(jpt) / mean(jpt):.2%}" if len(jpt) > 1 else "-"
        gpu = ok[0]["gpu_name"] if ok else "-"
        status = f"{len(ok)} ok / {len(rows) - len(ok)} failed"
        print(f"| {key[0]} | {key[1]} | {key[4]} | {key[5]} | {len(rows)} | {status} | {gpu} | "
              + " | ".join(cells) + f" | {cv} |")
    for r in t:
        if r["status"] != "ok":
            print("FAILED", r["job_id"], r["cycle"], r["error"])


if __name__ == "__main__":
    main(sys.argv[1])
