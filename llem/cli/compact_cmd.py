"""`llem compact [STORE]`: merge finished jobs' per-job files into a few files per table."""

from __future__ import annotations

import time

import click

from llem.cli.query_cmd import open_store
from llem.cli.term import plural
from llem.errors import UserError


@click.command()
@click.argument("store", required=False)
@click.option("--campaign", help="Only this campaign (default: every campaign in the store).")
def compact(store: str | None, campaign: str | None) -> None:
    """Rewrite a campaign's per-job Parquet files (one per job, cycle and table) into one
    file per table and campaign (more above 512 MiB), so queries over large campaigns read a
    few footers instead of thousands. Jobs whose runs row is ok are merged; failed ones stay
    per-job, and so do files that do not read whole (`llem doctor STORE` lists them).
    Readers see every row exactly once throughout, even if it is killed; running it again
    finishes the job. Safe beside a running campaign: files
    written meanwhile stay per-job until the next compaction. STORE: a path or pyarrow
    filesystem URI (default: the store of the grid file in this directory, else ./results).

    \b
      llem compact results --campaign demo
    """
    from llem.store.compact import compact as run_compact

    st = open_store(store, given_as="STORE")
    t0 = time.perf_counter()
    try:
        done = run_compact(st, campaign)
    except OSError as exc:  # permissions, a vanished mount: what was done so far reads whole
        raise UserError(f"cannot compact store {st.uri}: {str(exc).splitlines()[0]}; "
                        "nothing is lost, run it again once fixed") from None
    for c in done:
        if c.sources or c.removed:
            click.echo(f"{c.campaign} {c.table}: {plural(c.sources, 'file')} "
                       f"({plural(c.rows, 'row')}) -> {len(c.written)} compacted; "
                       f"{c.removed} removed")
    merged, camps = sum(c.sources for c in done), len({c.campaign for c in done})
    if not merged:  # said as what it is, not "compacted 0 files"
        click.echo(f"nothing to compact in {plural(camps, 'campaign')}: every finished "
                   "job's file is compacted already")
        return
    click.echo(f"compacted {plural(merged, 'file')} of {plural(camps, 'campaign')} in "
               f"{time.perf_counter() - t0:.1f} s")
