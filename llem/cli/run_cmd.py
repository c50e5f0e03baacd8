"""`llem run`: validate a grid, run it on Ray, stream results into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llem.config.load import load_campaign
from llem.dataset import check_datasets
from llem.grid import count_points


@click.command()
@click.argument("grid", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--store", help="Results store (path or URI); overrides the file's store.")
@click.option("--address", help="Ray cluster address; default RAY_ADDRESS, else an embedded "
              "local Ray.")
@click.option("--dashboard/--no-dashboard", default=False, show_default=True,
              help="Start the Ray dashboard with the embedded Ray.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; only the summary.")
def run(grid: Path, store: str | None, address: str | None, dashboard: bool,
        quiet: bool) -> None:
    """Run the campaign in GRID (a YAML grid file).

    Each job runs on its own worker (its own GPUs, exclusively); jobs sharing a model load
    share a worker. Results already in the store with status ok are skipped, so running
    the same command again resumes an interrupted campaign.
    """
    loaded = load_campaign(grid)  # validation first: a bad file starts nothing
    check_datasets(loaded)  # prompt files too, before Ray starts
    c = loaded.campaign
    console = Console(stderr=True, quiet=False)
    from llem.driver import Driver, connect
    from llem.store import Store

    st = Store(store or c.store)
    where = connect(address, dashboard=dashboard)
    hint = count_points(loaded) * c.cycles
    console.print(f"[bold]{c.name}[/]: up to {hint} jobs ({count_points(loaded)} points x "
                  f"{c.cycles} cycles) on Ray ({where}); store {st.uri}")
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                        TimeElapsedColumn(), console=console, disable=quiet)
    task = progress.add_task(c.name, total=hint, status="starting")

    unavailable: set[str] = set()

    def on_result(row: dict[str, Any], s: Any) -> None:
        if row.get("energy_unavailable"):
            unavailable.add(row["energy_unavailable"])
        energy = f"{row['energy_j']:.1f} J" if row.get("energy_j") is not None else "energy n/a"
        tps = f"{row['tokens_per_s']:.1f} tok/s" if row.get("tokens_per_s") else ""
        progress.update(task, completed=s.ok + s.failed + s.skipped,
                        total=max(hint - 0, s.total),
                        status=f"ok {s.ok} failed {s.failed} | last: {energy} {tps}")

    driver = Driver(loaded, st, on_result=on_result)
    with progress:
        summary = driver.run()
        progress.update(task, total=summary.total, completed=summary.total, status="done")
    if summary.skipped:
        console.print(f"skipped {summary.skipped} jobs already in the store (status ok)")
    _print_summary(console, summary)
    for reason in sorted(unavailable):
        console.print(f"energy not measured: {reason}")
    if summary.failed:
        for e in summary.errors[:5]:
            console.print(f"[red]failed[/] {e}")
    raise SystemExit(1 if summary.failed and not summary.ok else 0)


def _print_summary(console: Console, s: Any) -> None:
    t = Table(title="campaign summary")
    for col in ("jobs", "ok", "failed", "skipped", "model loads", "energy (J)", "tokens",
                "wall (s)"):
        t.add_column(col, justify="right")
    t.add_row(str(s.total), str(s.ok), str(s.failed), str(s.skipped), str(s.model_loads),
              f"{s.energy_j:.1f}" if s.energy_j else "n/a", str(s.output_tokens),
              f"{s.elapsed_s:.1f}")
    console.print(t)
