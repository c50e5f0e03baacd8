"""`llem doctor`: GPUs, energy sources, backend environments and Ray, each with its fix;
`llem doctor STORE`: the store's stray, partial and foreign files (llem.store.doctor)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import click
from rich.markup import escape
from rich.table import Table

from llem.cli.query_cmd import open_store
from llem.cli.term import console as out
from llem.cli.term import plural
from llem.credentials import mask_shapes, redact
from llem.doctor import machine_checks
from llem.store.doctor import inspect
from llem.store.schema import SCHEMA_VERSION

COLORS = {"ok": "green", "warn": "yellow", "fail": "red", "info": "cyan"}


@click.command()
@click.argument("store", required=False)
@click.option("--clean", is_flag=True, help="With STORE: remove partial and temp files, move "
              "damaged and foreign ones to STORE/.quarantine (with the other files of their "
              "job's measurement, so the job runs again).")
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
    writer that died, Parquet files cut short or damaged, each file read whole with its
    page checksums; foreign files and schemas, another schema version); --clean removes or
    quarantines them. Exit status 1 while any is left.
    """
    if store is not None:
        raise SystemExit(doctor_store(store, clean=clean, as_json=as_json))
    if clean:
        raise click.UsageError("--clean needs a STORE (llem doctor STORE --clean)")

    checks = [replace(c, item=_masked(c.item), detail=_masked(c.detail), fix=_masked(c.fix))
              for c in machine_checks(address, deep=not quick)]  # --address u:pw@host
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
        out().print(t)  # the terminal's width; plain off a terminal
    failed = [c for c in checks if c.state == "fail"]
    if failed:
        raise SystemExit(1)


def doctor_store(where: str, clean: bool = False, as_json: bool = False) -> int:
    """Print the store's report; exit status 0 when nothing is left to fix, else 1."""
    store = open_store(where, warnings=False, given_as="STORE")  # it names every file skipped
    report = inspect(store, clean=clean)
    if as_json:
        click.echo(json.dumps({"store": store.uri, "schema_version": SCHEMA_VERSION,
                               "data_files": report.data_files}))
        for f in report.findings:
            click.echo(json.dumps(asdict(f)))
        return 1 if report.problems else 0
    console = out()
    files = ", ".join(f"{n} {t}" for t, n in report.data_files.items())
    console.print(f"store {escape(store.uri)}: data files {files} (schema version "
                  f"{SCHEMA_VERSION})", highlight=False)
    if report.findings:
        t = Table(title="files readers skip")
        for col in ("file", "kind", "what", "action"):
            t.add_column(col, overflow="fold")
        for f in report.findings:
            t.add_row(escape(_shown(f.path)), f.kind, escape(f.detail), f.action)
        console.print(t)
    left = report.problems
    if not left:
        done = len(report.findings)
        fixed = f" ({plural(done, 'file')} fixed)" if done else ""
        console.print(f"store is clean{fixed}")
        return 0
    hint = "" if clean else "; run `llem doctor STORE --clean` to remove or quarantine them"
    console.print(f"{plural(len(left), 'file')} need{'s' if len(left) == 1 else ''} "
                  f"attention{hint}", highlight=False)
    return 1



def _shown(name: str) -> str:
    """A file name on one line: control characters (a newline in a name) escaped."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in name)


def _masked(text: str) -> str:
    """A check's text without a credential: the address's password, a token it shows."""
    return mask_shapes(redact(text))
