"""`llem compare`: a campaign's configurations side by side with CIs and ratios."""

from __future__ import annotations

import click
from rich.table import Table

from llem.cli.query_cmd import STORE_HELP, open_store
from llem.cli.term import console, plural
from llem.errors import UserError
from llem.report import compare as cmp
from llem.report.metrics import resolve

INCLUDE_INVALID_HELP = ("Energy figures over every ok cycle, those whose energy is invalid "
                        "(energy_valid false, or a neighbour on their GPUs) included. "
                        "Default: left out, and counted.")
GPU_ALIASES = {"gpu": "gpu_uuids", "gpu_uuid": "gpu_uuids"}  # --by gpu: per GPU


def invalid_note(n: int, include_invalid: bool) -> str | None:
    """One line on the cycles whose energy is invalid, or None when there are none."""
    if not n:
        return None
    if include_invalid:
        return (f"{plural(n, 'cycle')} with invalid energy included (--include-invalid): "
                "energy figures are not all trustworthy")
    return (f"{plural(n, 'cycle')} with invalid energy left out of the energy figures "
            "(--include-invalid keeps them; energy_invalid_reasons says why)")


def split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


@click.command()
@click.argument("campaign")
@click.option("--by", help="Comma-separated parameters that define a configuration: a "
              "parameter's name or dotted path in the point (batch_size, request_rate, "
              "server.rate, dataset.num_prompts) or a runs column. Default: every parameter "
              "that varies between the campaign's configurations.")
@click.option("--metric", "metric", help="Comma-separated metrics: runs columns or aliases "
              "(j_per_token, throughput, ttft, latency_p99, power). Default: j_per_token,"
              "tokens_per_s; in server mode also arrival_rate_achieved, goodput_requests_per_s, "
              "slo_attainment.")
@click.option("--baseline", help="The configuration ratios are taken against, as KEY=VALUE "
              "pairs of --by keys (e.g. backend=transformers,batch_size=1). Default: the "
              "first row.")
@click.option("--store", help=STORE_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]),
              default="table", show_default=True)
@click.option("--include-invalid", is_flag=True, help=INCLUDE_INVALID_HELP)
def compare(campaign: str, by: str | None, metric: str, baseline: str | None,
            store: str | None, fmt: str, include_invalid: bool) -> None:
    """Compare CAMPAIGN's configurations: mean ± 95% CI over cycles, ratio vs a baseline.

    Each row is one group of --by values; its statistics run over that group's ok runs (one
    per job x cycle), so with --by covering every varying parameter (the default) each row
    is one configuration and n is its cycle count. Server mode: each rate level is a
    configuration (the rate is a parameter). The CI is the Student-t 95% half-width:
    t(0.975, n-1) * std / sqrt(n). Energy and power metrics leave out the cycles whose
    energy is invalid (energy_valid false, or a neighbour on their GPUs: the stats view's
    rule), counted per row in a column of their own; throughput and latency keep them.
    --by gpu groups by the GPUs a row ran on (gpu_uuids).

    \b
      llem compare demo --by batch_size,max_new_tokens --metric tokens_per_s,latency_p50
      llem compare sweep --by backend,batch_size --baseline backend=transformers,batch_size=1
      llem compare arrivals --by request_rate --metric ttft_p99,tokens_per_s
    """
    from llem.report.campaign import Campaign

    for flag, value in (("--by", by), ("--metric", metric), ("--baseline", baseline)):
        if value is not None and not split(value):  # '' fell back to the default
            raise UserError(f"{flag} is empty: give a value, or leave {flag} out")
    camp = Campaign.open(open_store(store), campaign, include_invalid)
    try:
        keys = camp.keys([GPU_ALIASES.get(b, b) for b in split(by)], "--by") if by \
            else [p.path for p in camp.params]
        metrics = (resolve(split(metric), camp.numeric_columns, columns=camp.columns)
                   if split(metric) else cmp.default_metrics(camp))
        server = camp.server_mode
        rows, names = cmp.compare(camp, keys, metrics, baseline)
    finally:
        camp.close()
    if fmt != "table":
        click.echo(cmp.render(rows, names, metrics, fmt, server, include_invalid))
        return
    header, cells = cmp.human_rows(rows, names, metrics, server, include_invalid)
    table = Table(title=f"{campaign}: mean ± 95% CI over cycles")
    for h in header:
        table.add_column(h, justify="left" if h in names else "right")
    for line in cells:
        table.add_row(*line)
    console().print(table)
    note = invalid_note(sum(r.get("invalid_n") or 0 for r in rows), include_invalid)
    if note:
        click.echo(note, err=True)
