"""Command-line values no command can use, refused before the command runs: an empty (or
blank) value of an option, or of a path argument. click turns `-o ''` into Path('.'), so
`report -o ''` said "-o . is a device, pipe or socket", `--png ''` wrote into the working
folder, `--job ''` was an internal error of DuckDB's, `submit --address ''` a Ray message
cut short."""

from __future__ import annotations

import importlib
from typing import Any

import click

from llem.errors import UserError

# each subcommand's module, imported when the command runs (or --help lists them all): a
# command does not pay for the others' imports (report's pyarrow, duckdb, plotly: ~0.3 s)
COMMANDS = {"run": "llem.cli.run_cmd", "submit": "llem.cli.submit_cmd",
            "status": "llem.cli.submit_cmd", "logs": "llem.cli.submit_cmd",
            "stop": "llem.cli.submit_cmd", "query": "llem.cli.query_cmd",
            "results": "llem.cli.query_cmd", "compare": "llem.cli.compare_cmd",
            "report": "llem.cli.report_cmd", "export": "llem.cli.export_cmd",
            "tiny-model": "llem.cli.tools_cmd", "env": "llem.cli.env_cmd",
            "doctor": "llem.cli.doctor_cmd", "compact": "llem.cli.compact_cmd"}


class Commands(click.Group):
    """llem's group: each subcommand's raw values are checked before click converts them;
    each is imported only when asked for (COMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        mod = importlib.import_module(module)
        command: click.Command = getattr(mod, cmd_name.replace("-", "_"))
        return command

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        if cmd is not None and not isinstance(cmd, click.Group):
            refuse_empty(cmd, ctx, name, rest)
        return name, cmd, rest


def refuse_empty(cmd: click.Command, parent: click.Context, name: str | None,
                 args: list[str]) -> None:
    """A UserError for the first option value, or path argument, that is empty or blank."""
    sub = click.Context(cmd, parent=parent, info_name=name, resilient_parsing=True)
    try:
        opts, _, _ = cmd.make_parser(sub).parse_args(args=list(args))
    except click.ClickException:
        return  # a flag click does not know, a missing value: click says so itself
    for param in cmd.get_params(sub):
        if param.name not in opts or not _blank(opts[param.name]):
            continue
        if isinstance(param, click.Option) and not param.is_flag:
            flag = next((o for o in param.opts if o.startswith("--")), param.opts[0])
            raise UserError(f"{flag} is empty: give a value, or leave {flag} out")
        if isinstance(param, click.Argument) and isinstance(param.type, click.Path):
            raise UserError(f"{param.human_readable_name} is empty: give a path")


def _blank(value: Any) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(v, str) and not v.strip() for v in values)
