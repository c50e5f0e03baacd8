"""`llem doctor`: GPUs, energy sources, backend environments and Ray, each with its fix;
`llem doctor STORE`: the store's stray, partial and foreign files (llem.store_doctor)."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

COLORS = {"ok": "green", "warn": "yellow", "fail": "red", "info": "cyan"}


@click.command()
@click.argument("store", required=False)
@click.option("--clean", is_flag=True, help="With STORE: remove partial and temp files, move "
              "foreign ones to STORE/.quarantine.")
@click.option("--address", help="Also check the Ray cluster at this address (default "
              "RAY_ADDRESS): its version, nodes and GPUs.")
@click.option("--quick", is_flag=True, help="Do not run each backend venv's python to check it.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per check, one a line.")
def doctor(store: str | None, clean: bool, address: str | None, quick: bool,
           as_json: bool) -> None:
    """What this machine (and the cluster) offers llem: GPUs (name, memory, driver, MIG),
    energy sources (NVML counter, RAPL, codecarbon), backend environments, Ray address and
    version. Each missing piece comes with its fix. Exit status 1 when a check fails.

    With STORE (a results store path or URI): the files its readers skip (temp files of a
    writer that died, Parquet files cut short, foreign files, another schema version);
    --clean removes or quarantines them. Exit status 1 while any is left.
    """
    if store is not None:
        from llem.store_doctor import doctor_store

        raise SystemExit(doctor_store(store, clean=clean, as_json=as_json))
    if clean:
        raise click.UsageError("--clean needs a STORE (llem doctor STORE --clean)")
    from llem.doctor import machine_checks

    checks = machine_checks(address, deep=not quick)
    if as_json:
        for c in checks:
            click.echo(json.dumps(c.row()))
    else:
        t = Table(title="llem doctor", show_lines=False)
        for col in ("area", "item", "state", "found", "fix"):
            t.add_column(col, overflow="fold")
        for c in checks:
            t.add_row(c.area, escape(c.item), f"[{COLORS[c.state]}]{c.state}[/]",
                      escape(c.detail), escape(c.fix))
        Console(width=160).print(t)
    failed = [c for c in checks if c.state == "fail"]
    if failed:
        raise SystemExit(1)
