"""`llem report`: one self-contained HTML page (and optionally PNGs) for a campaign."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import click

from llem.cli.compare_cmd import INCLUDE_INVALID_HELP, invalid_note
from llem.cli.query_cmd import STORE_HELP, open_store
from llem.cli.suffixes import output_format
from llem.cli.term import check_output, plural
from llem.errors import UserError
from llem.report.output import atomic_file, check_folder


@click.command()
@click.argument("campaign")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("report.html"), show_default=True,
              help="The HTML file to write (.html or .htm).")
@click.option("--png", "png_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write every plot as a PNG into this folder, after the HTML page "
              "(kaleido needs Chrome or Chromium: `plotly_get_chrome` downloads one).")
@click.option("--job", help="Job whose power timeline is drawn: a job_id or unique prefix, "
              "optionally JOB:CYCLE. Default: the job with the most power samples.")
@click.option("--store", help=STORE_HELP)
@click.option("--include-invalid", is_flag=True, help=INCLUDE_INVALID_HELP)
def report(campaign: str, output: Path, png_dir: Path | None, job: str | None,
           store: str | None, include_invalid: bool) -> None:
    """Write CAMPAIGN's report: configuration, environment, a sortable results table and plots.

    Plots: J/token vs throughput with the Pareto frontier, latency (p50/p99, TTFT) vs
    energy and vs throughput, each metric by swept parameter (the others as colour), one
    job's power timeline with its idle baseline; server mode: J/token, goodput, SLO
    attainment and p99 TTFT/ITL against the achieved rate per configuration (saturated
    levels marked), and the energy-latency Pareto (J/token vs p99 TTFT and vs p99 ITL).
    The page inlines plotly's JavaScript: it opens offline, from a file or e-mail.
    Energy and power figures leave out the runs whose energy is invalid (counted per
    configuration and in the summary) unless --include-invalid.
    """
    import plotly.offline

    from llem.report.campaign import Campaign
    from llem.report.data import gather
    from llem.report.figures import all_figures
    from llem.report.html import page

    check_output(output, "-o")  # a device or pipe first; all before the store is read
    output_format(output, None, ("html",), "-o", "html", " (the plots as PNG: --png FOLDER)")
    if png_dir is not None and png_dir.resolve() == output.resolve():  # the page, then no
        raise UserError(f"--png {png_dir} is -o's file: give the PNGs a folder of their "  # room
                        "own, e.g. --png figures/")
    camp = Campaign.open(open_store(store), campaign, include_invalid)
    try:
        data = gather(camp, job)
    finally:
        camp.close()
    figures = all_figures(data)
    check_folder(output, "-o")
    if png_dir:
        check_folder(png_dir, "--png")
    text = page(data, figures, plotly.offline.get_plotlyjs())
    with atomic_file(output) as tmp:  # the page first: PNGs that fail do not cost it
        Path(tmp).write_text(text, encoding="utf-8")
    click.echo(f"wrote {output} ({plural(len(data.configs), 'configuration')}, "
               f"{plural(len(figures), 'plot')})")
    note = invalid_note(data.invalid, include_invalid)
    if note:
        click.echo(note, err=True)
    if png_dir:
        staged = _pngs(figures, png_dir)
        png_dir.mkdir(exist_ok=True)
        for p in sorted(staged.iterdir()):
            os.replace(p, png_dir / p.name)
        shutil.rmtree(staged, ignore_errors=True)
        click.echo(f"wrote {plural(len(figures), 'PNG')} in {png_dir}")


def _pngs(figures: list, png_dir: Path) -> Path:
    """Render the PNGs into a staging folder first, so a failure writes none of them."""
    import plotly.io as pio

    staged = Path(tempfile.mkdtemp(prefix=".llem-png-", dir=png_dir.resolve().parent))
    try:
        pio.write_images([f for _, f in figures], [staged / f"{n}.png" for n, _ in figures],
                         width=1100, height=520, scale=2)
    except Exception as exc:  # kaleido: no browser, browser crashed, timeout
        shutil.rmtree(staged, ignore_errors=True)
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        first = lines[0] if lines else type(exc).__name__
        err = UserError(f"--png: no PNG written ({first.rstrip('.')}); the HTML page is "
                        "written. Kaleido renders PNGs with Chrome or Chromium: run "
                        "`plotly_get_chrome` (it downloads one for kaleido), or install "
                        "chromium (or set BROWSER_PATH to it), then run this command again")
        err.exit_code = 1  # not a mistake in the command: the page is there, the PNGs not
        raise err from None
    return staged
