"""`llem compare`: a campaign's configurations side by side with CIs and ratios."""

from __future__ import annotations

import click
from rich.table import Table

from llem.cli.query_cmd import STORE_HELP, open_store
from llem.cli.term import console
from llem.report import compare as cmp
from llem.report.metrics import resolve


def split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


@click.command()
@click.argument("campaign")
@click.option("--by", help="Comma-separated runs columns that define a configuration "
              "(e.g. backend,batch_size). Default: the campaign's swept parameters.")
@click.option("--metric", "metric", default="j_per_token,tokens_per_s", show_default=True,
              help="Comma-separated metrics: runs columns or aliases (j_per_token, "
              "throughput, ttft, latency_p99, power).")
@click.option("--baseline", help="The configuration ratios are taken against, as KEY=VALUE "
              "pairs of --by keys (e.g. backend=transformers,batch_size=1). Default: the "
              "first row.")
@click.option("--store", help=STORE_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]),
              default="table", show_default=True)
def compare(campaign: str, by: str | None, metric: str, baseline: str | None,
            store: str | None, fmt: str) -> None:
    """Compare CAMPAIGN's configurations: mean ± 95% CI over cycles, ratio vs a baseline.

    Each row is one group of --by values; its statistics run over that group's ok runs (one
    per job x cycle), so with --by covering every swept parameter n is the cycle count. The
    CI is the Student-t 95% half-width: t(0.975, n-1) * std / sqrt(n).

    \b
      llem compare demo --by batch_size,max_new_tokens --metric tokens_per_s,latency_p50
      llem compare sweep --by backend,batch_size --baseline backend=transformers,batch_size=1
    """
    from llem.report.campaign import Campaign

    camp = Campaign.open(open_store(store), campaign)
    try:
        keys = camp.check_columns(split(by), "--by") if by else camp.swept()
        metrics = resolve(split(metric) or ["j_per_token"], camp.numeric_columns)
        rows, _ = cmp.compare(camp, keys, metrics, cmp.parse_baseline(baseline, keys))
    finally:
        camp.close()
    if fmt != "table":
        click.echo(cmp.render(rows, keys, metrics, fmt))
        return
    header, cells = cmp.human_rows(rows, keys, metrics)
    table = Table(title=f"{campaign}: mean ± 95% CI over cycles")
    for h in header:
        table.add_column(h, justify="left" if h in keys else "right")
    for line in cells:
        table.add_row(*line)
    console().print(table)
