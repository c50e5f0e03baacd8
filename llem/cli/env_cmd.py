"""`llem env build` and `llem env list`: each backend's Python environment (jobs/<backend>/)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from llem.backends import REGISTRY, get_info
from llem.cli.term import console
from llem.config.load import load_campaign
from llem.envs.build import build
from llem.envs.environments import statuses
from llem.envs.status import grid_statuses
from llem.errors import UserError
from llem.paths import check_roots


@click.group("env")
def env() -> None:
    """Each backend's own Python environment, where its Ray workers run.

    \b
      llem env list                  every backend's environment and whether it is ready
      llem env list grid.yaml        the environments that grid's backends would run in
      llem env build vllm            build the vLLM venv from jobs/vllm/ (uv, else pip)

    Venvs live under ~/.cache/llem/envs (LLEM_ENVS_DIR overrides), named by a hash of what
    they are built from, so every checkout and CI run on the machine reuses them. A grid
    picks each backend's environment in its `environments:` section (kind: current, venv,
    pip, uv or image); without one, the default in jobs/<backend>/env.yaml applies.
    """


@env.command("build")
@click.argument("backend")
@click.option("--variant", help="Requirements variant from jobs/BACKEND/env.yaml (cuda, cpu). "
              "Default: cuda when NVML sees a GPU, else cpu.")
@click.option("--tool", type=click.Choice(["uv", "pip"]), help="Installer; default uv when it "
              "is on PATH, else pip.")
@click.option("--force", is_flag=True, help="Rebuild even when a ready venv exists.")
def build_cmd(backend: str, variant: str | None, tool: str | None, force: bool) -> None:
    """Build BACKEND's venv from jobs/BACKEND/ (reused when it is already ready)."""
    _known(backend)
    check_roots()  # a file where LLEM_ENVS_DIR names a folder: one line, not a traceback
    err = console(stderr=True)
    marker = build(backend, variant=variant, tool=tool, force=force,
                   log=lambda line: err.print(line, markup=False))
    click.echo(marker["python"])


@env.command("list")
@click.argument("grid", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quick", is_flag=True, help="Do not run each venv's python to check it.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per environment.")
def list_cmd(grid: Path | None, quick: bool, as_json: bool) -> None:
    """Each backend's environment: kind, state (ready, missing, incomplete, broken,
    unsupported, on demand), where.

    With GRID: the environment each of its backends would run in (its `environments:`
    section, else the defaults), checked as `llem run` checks them, with the fix for each.
    """
    if grid is not None:
        loaded = load_campaign(grid)
        c = loaded.campaign
        rows = grid_statuses(c.backends, c.environments, deep=not quick,
                             source=loaded.source)
        title = f"environments of {c.name}"
    else:
        rows, title = statuses(sorted(REGISTRY), deep=not quick), "backend environments"
    if as_json:
        for st in rows:
            click.echo(json.dumps(dataclasses.asdict(st)))
        return
    t = Table(title=title)
    for col in ("backend", "kind", "state", "where", "detail"):
        t.add_column(col)
    for st in rows:
        color = {"ready": "green", "on demand": "yellow"}.get(st.state, "red")
        t.add_row(st.backend, st.kind, f"[{color}]{st.state}[/]", escape(st.where),
                  escape(st.detail))
    console().print(t)


def _known(backend: str) -> None:
    try:
        get_info(backend)
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from None
