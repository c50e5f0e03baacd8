"""Each command is imported only when it runs (llem.cli.values.COMMANDS): every name there
resolves to its own command, `llem --help` lists them all, and a bad grid is refused
without importing Ray or the driver."""

from __future__ import annotations

import subprocess
import sys

import click

from llem.cli import cli
from llem.cli.values import COMMANDS
from tests.support.cli import run_cli


def test_every_command_resolves_to_itself() -> None:
    ctx = click.Context(cli)
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert isinstance(cmd, click.Command) and cmd.name == name, name
    assert cli.get_command(ctx, "rnu") is None


def test_help_lists_every_command(tmp_path) -> None:
    r = run_cli("--help")
    assert r.returncode == 0, r.stderr
    listed = [line.split()[0] for line in r.stdout.split("Commands:")[1].splitlines()
              if line.strip()]
    assert listed == list(COMMANDS)


def test_a_bad_grid_is_refused_before_ray_is_imported(tmp_path) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text("name: t\nmodels: [m]\nbackends: [noop]\ngrid: {batch_size: [0]}\n")
    code = ("import sys\nfrom llem.cli import main\nsys.argv = ['llem', 'run', sys.argv[1]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n"
            "    print(e.code, 'ray' in sys.modules, 'llem.scheduler.driver' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code, str(grid)], capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.stdout.split() == ["2", "False", "False"], (r.stdout, r.stderr)
    assert "must be >= 1" in r.stderr
