"""The llem command line: one command per function, errors as one line and exit code 2."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

import click

from llem.cli.values import Commands
from llem.credentials import redact, remember, url_secrets
from llem.errors import UserError, one_line
from llem.version import __version__


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llem")
def cli() -> None:
    """llem measures what LLM inference costs (energy, throughput, latency) across backends
    and their settings, on one machine or a Ray cluster.

    \b
      llem run configs/demo.yaml             run a grid on an embedded local Ray
      llem submit grid.yaml --address URL    run it as a Ray Job on a cluster
      llem status JOB / logs JOB -f / stop JOB   follow or stop a submitted campaign
      llem query "SELECT * FROM runs"        DuckDB over the results
      llem compare CAMPAIGN --by backend     configurations side by side, with CIs
      llem report CAMPAIGN -o report.html    one HTML page with plots
      llem env build vllm                    a backend's own Python environment
      llem doctor                            GPUs, energy sources, environments, Ray
      llem compact STORE --campaign NAME     merge a finished campaign's files (fast queries)
    """


_CTRL_C: list[bool] = []  # Ctrl-C was pressed (see _note_ctrl_c)


def _note_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """Python's own SIGINT handler, noted first: DuckDB turns the KeyboardInterrupt it
    raises mid-query into RuntimeError('Query interrupted'), which printed a traceback."""
    _CTRL_C.append(True)
    signal.default_int_handler(signum, frame)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes print one line and exit 2, never a traceback."""
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _note_ctrl_c)
    except ValueError:  # not the main thread (llem's CLI called from a thread)
        pass
    # a password or token in a URL or address given here: masked wherever it is echoed,
    # with its URL or without (a library's error may quote the key alone)
    for arg in [*(sys.argv[1:] if argv is None else argv), os.environ.get("RAY_ADDRESS", "")]:
        remember(url_secrets(arg))
    try:
        cli.main(args=argv, prog_name="llem", standalone_mode=False)
    except UserError as exc:
        click.echo(f"error: {redact(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:  # `llem`, `llem env`: the help, as text
        click.echo(exc.ctx.get_help())
        sys.exit(0)
    except click.ClickException as exc:  # a bad flag or argument: one line too
        ctx = getattr(exc, "ctx", None)
        usage = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        click.echo(f"error: {one_line(redact(exc.format_message()))}{usage}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:  # `llem ... | head`: the reader has what it wanted; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the flush at exit must not fail again
        sys.exit(1)  # as rich's console does when its own write finds the pipe closed
    except Exception:
        if not _CTRL_C:
            raise
        click.echo("interrupted", err=True)  # Ctrl-C, reported as another error
        sys.exit(130)
