"""`llem run`: validate a grid (or build a one-point one from flags), run it on Ray, stream
results into the store."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from llem.cli.addresses import check_address
from llem.cli.addresses import split_address as split_address  # its callers import it here
from llem.cli.dry_run import dry_run
from llem.cli.gpu_default import default_gpus
from llem.cli.run_progress import RunProgress
from llem.cli.term import Out, console
from llem.config.checks import check_local_keys
from llem.config.grid import count_points
from llem.config.load import from_data, load_campaign
from llem.config.loaded import Loaded
from llem.config.overrides import Flag, one_point
from llem.config.vocab import DTYPE_ALIASES, DTYPES, PRESETS
from llem.config.yaml_source import SourceMap, shown
from llem.credentials import collect, redact
from llem.errors import UserError
from llem.measure.gpu import local_gpus
from llem.paths import check_roots, folder_problem

if TYPE_CHECKING:
    from llem.store.run_row import RunRow

ORDERS = ("interleaved", "sequential", "shuffled", "williams")  # llem.config.order


def _same(v: Any) -> Any:
    return v


def _listed(v: Any) -> Any:
    return [v]


# parameter path -> (click parameter, the flag a message names, how its value is laid over)
FLAG_PATHS: dict[str, tuple[str, str, Any]] = {
    "models": ("model", "--model", _listed), "backends": ("backend", "--backend", _listed),
    "name": ("name", "--name", _same), "cycles": ("cycles", "--cycles", _same),
    "order": ("order", "--order", _same), "seed": ("seed", "--seed", _same),
    "dataset.num_prompts": ("num_prompts", "--num-prompts", _same),
    "batch_size": ("batch_size", "--batch-size", _same), "dtype": ("dtype", "--dtype", _same),
    "max_new_tokens": ("max_new_tokens", "--max-new-tokens", _same),
    "preset": ("preset", "--preset", _same),
    "temperature": ("temperature", "--temperature", _same),
    "top_p": ("top_p", "--top-p", _same), "top_k": ("top_k", "--top-k", _same),
    "repetition_penalty": ("repetition_penalty", "--repetition-penalty", _same),
    "min_new_tokens": ("min_new_tokens", "--min-new-tokens", _same),
    "grid.seed": ("sampling_seed", "--sampling-seed", _same),
    "resources.gpus_per_job": ("gpus", "--gpus", _same),
    "measurement.thermal_gaps": ("no_gaps", "--no-gaps", lambda _: False),
    "measurement.gap_max_s": ("gap_max_s", "--gap-max-s", _same),
}


@click.command()
@click.argument("grid", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "-m", help="Model (hub id, ./local/path or llem:tiny). Without GRID "
              "this builds a one-point campaign; with GRID it replaces the file's models.")
@click.option("--backend", "-b", help="Backend (default transformers without GRID).")
@click.option("--num-prompts", "-n", type=click.IntRange(1), help="Prompts per job.")
@click.option("--batch-size", type=click.IntRange(1), help="Requests per batch.")
@click.option("--precision", "--dtype", "dtype", type=click.Choice(DTYPES + tuple(DTYPE_ALIASES),
              case_sensitive=False), help="Weights/compute dtype, e.g. bf16.")
@click.option("--max-new-tokens", type=click.IntRange(1), help="Output tokens per request.")
@click.option("--preset", type=click.Choice(tuple(PRESETS)), help="Decoding preset "
              "(temperature, top_p, top_k, repetition penalty).")
@click.option("--temperature", type=click.FloatRange(0), help="Sampling temperature (0: greedy).")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), help="Nucleus sampling.")
@click.option("--top-k", type=click.IntRange(0), help="Top-k sampling (0: off).")
@click.option("--repetition-penalty", type=click.FloatRange(0, min_open=True),
              help="Repetition penalty (1: off).")
@click.option("--min-new-tokens", type=click.IntRange(0), help="Tokens decoded before EOS "
              "may stop a request.")
@click.option("--sampling-seed", type=int, help="Seed of sampling (the grid's seed:).")
@click.option("--gpus", type=click.IntRange(0), help="GPUs per job (default without GRID: 1 "
              "where this machine has a GPU, else 0).")
@click.option("--cycles", type=click.IntRange(1, 1000), help="Repeats of every point.")
@click.option("--order", type=click.Choice(ORDERS), help="Order of the configurations within "
              "a cycle (the grid's interleave: says across what cycles alternate).")
@click.option("--seed", type=int, help="Seed of --order shuffled (default: drawn, printed and "
              "recorded with each result as order_seed).")
@click.option("--name", help="Campaign name (default without GRID: quick).")
@click.option("--no-gaps", is_flag=True, help="No thermal gaps between jobs on a GPU.")
@click.option("--gap-max-s", type=click.FloatRange(0, 3600), help="Longest thermal gap: wait at "
              "most this long for a GPU to be back near idle before a job (default 60).")
@click.option("--store", help="Results store (path or URI); overrides the file's store.")
@click.option("--address", help="Ray cluster address; default RAY_ADDRESS, else an embedded "
              "local Ray.")
@click.option("--dashboard/--no-dashboard", default=False, show_default=True,
              help="Start the Ray dashboard with the embedded Ray.")
@click.option("--rerun", is_flag=True, help="Measure every job again, done ones too: the new "
              "measurement is stored beside the earlier one (both stay queryable: the runs "
              "view shows the newest, runs_all every one).")
@click.option("--dry-run", is_flag=True, help="Validate everything and print points, jobs, load "
              "groups, GPUs and estimated memory per job against the cluster's GPUs, and the "
              "jobs that can never be placed; run nothing, write nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: the plan as one JSON "
              "object (sizes in bytes).")
@click.option("--quiet", "-q", is_flag=True, help="Only the summary line: no header, progress "
              "or results table.")
@click.option("--verbose", "-v", is_flag=True, help="Tracebacks of failures (internal errors "
              "and failed jobs); without it each is one line.")
def run(grid: Path | None, quiet: bool, verbose: bool, **flags: Any) -> None:
    """Run the campaign in GRID (a YAML grid file), or a one-point campaign from flags:

    \b
      llem run configs/demo.yaml
      llem run configs/demo.yaml --batch-size 4 --cycles 3   flags override the file
      llem run --model llem:tiny -n 100 --batch-size 4 --precision bf16
      llem run grid.yaml --dry-run     counts, load groups, memory per job; runs nothing

    Each job runs on its own worker (its own GPUs, exclusively); jobs sharing a model load
    share a worker. Results already in the store with status ok are skipped, so running
    the same command again resumes an interrupted campaign.
    """
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose cannot be used together")
    try:
        _run(grid, quiet, verbose, **flags)
    except (UserError, click.ClickException, click.exceptions.Exit, KeyboardInterrupt,
            BrokenPipeError):  # (a reader that stopped early: llem.cli.main)
        raise
    except Exception as exc:
        if verbose:
            raise
        first = redact((str(exc).splitlines() or [""])[0][:300])
        click.echo(f"error: internal error: {type(exc).__name__}: {first} (run again with "
                   "--verbose for the traceback)", err=True)
        sys.exit(1)


def load_for_run(grid: Path | None, flags: dict[str, Any],
                 notes: list[str] | None = None) -> Loaded:
    """The validated campaign: GRID with the flags laid over it, or one built from flags."""
    overrides = {path: None if flags.get(dest) is None or flags.get(dest) is False else
                 Flag(wrap(flags[dest]), f"{flag} {shown(flags[dest])}" if flag != "--no-gaps"
                      else flag)
                 for path, (dest, flag, wrap) in FLAG_PATHS.items()}
    if grid is not None:
        loaded = load_campaign(grid, overrides)
        if flags.get("gpus") is None:
            gpus, note = default_gpus(loaded, flags.get("address")
                                      or os.environ.get("RAY_ADDRESS"))
            if note is not None and notes is not None:
                notes.append(note)  # said once the grid passed every check
            if gpus is not None:
                loaded = load_campaign(grid, {**overrides, "resources.gpus_per_job": Flag(
                    gpus, f"gpus_per_job {gpus} (llem's default: {note})")})
        return loaded
    if not flags.get("model"):
        raise click.UsageError("give a GRID file or --model (e.g. llem run --model llem:tiny "
                               "-n 16)")
    if flags.get("gpus") is None:

        gpus = 1 if local_gpus()[0] else 0
        overrides["resources.gpus_per_job"] = Flag(gpus, f"gpus_per_job {gpus} (llem's default "
                                                   "on this machine; --gpus N sets it)")
    data = one_point(flags["model"], flags.get("backend") or "transformers")
    return from_data(data, SourceMap("command line"), base_dir=Path.cwd(), overrides=overrides)


def _run(grid: Path | None, quiet: bool, verbose: bool, **flags: Any) -> None:
    if flags.get("as_json") and not flags.get("dry_run"):
        raise click.UsageError("--json goes with --dry-run")
    for name in ("model", "backend", "name", "store", "address"):  # '' was silently ignored
        if flags.get(name) is not None and not flags[name].strip():
            raise UserError(f"--{name} is empty: give a value, or leave --{name} out")
    check_address(flags.get("address"), "--address")
    if not flags.get("address"):
        check_address(os.environ.get("RAY_ADDRESS") or None, "RAY_ADDRESS")
    check_environment()
    if not (flags.get("address") or os.environ.get("RAY_ADDRESS")):
        check_home()
    err = console(stderr=True)  # progress and notices
    with stop_on_signals() as stop:
        try:
            code = _campaign(grid, quiet, verbose, stop, err, **flags)
        except KeyboardInterrupt:  # stopped before the driver ran (loading, checks, Ray start)
            stop.done = True
            from llem.cli.stats_table import summary_line
            from llem.scheduler.state import Summary

            err.print(escape(summary_line(Summary(interrupted=True))), highlight=False)
            err.print("interrupted before any job ran: nothing stored. Run the same command "
                      "again to start.", highlight=False)
            code = 130
    raise SystemExit(code)


def check_environment() -> None:
    """llem's folder variables and credential files, before the grid and Ray: a file where
    LLEM_CACHE names a folder failed the job in the worker, a FIFO as LLEM_SECRETS_FILE hung
    the first error message."""
    check_roots()
    collect()


def check_home() -> None:
    """Ray started here keeps files in ~/.ray (its auth token): a HOME it cannot write was an
    internal FileNotFoundError from ray.init."""
    home = Path.home()
    why = folder_problem(home) if home.exists() else "does not exist"
    if why:
        raise UserError(f"HOME={home} {why}: Ray, started here, keeps files in ~/.ray; set "
                        "HOME to a folder you can write, or give --address of a running "
                        "Ray cluster")


def _campaign(grid: Path | None, quiet: bool, verbose: bool, stop: Stopper, err: Out,
              **flags: Any) -> int:
    notes: list[str] = []
    loaded = load_for_run(grid, flags, notes)  # validation first
    if not (flags.get("address") or os.environ.get("RAY_ADDRESS")):
        check_local_keys(loaded)  # this machine's workers: their environment is this one
    # Ray, the driver and the server client (~0.5 s of imports): only once the grid passed
    from llem.api import Started, prepare, run_campaign
    from llem.cli.stats_table import print_end

    # prompt files, backend environments (a dry run notes a missing env) and a writable
    # store, before Ray
    ready = prepare(loaded, store=flags.get("store") or loaded.campaign.store,
                    plan_only=bool(flags.get("dry_run")))
    for note in [] if quiet else notes:
        err.print(escape(note), highlight=False)
    address, store, dashboard = flags.get("address"), flags.get("store"), flags["dashboard"]
    c = loaded.campaign
    if flags.get("dry_run"):
        return dry_run(loaded, address or os.environ.get("RAY_ADDRESS"), verbose,
                       store or c.store, as_json=flags.get("as_json", False),
                       rerun=bool(flags.get("rerun")))
    out = console()  # results
    shown = RunProgress(err, c.name, count_points(loaded) * c.cycles, quiet)
    tracebacks: list[str] | None = [] if verbose else None

    def on_result(row: RunRow, s: Any) -> None:
        if row.traceback and tracebacks is not None:
            tracebacks.append(f"{row.job_id} c{row.cycle}:\n{row.traceback}")
        shown.result(row, s)

    with shown:
        def on_start(s: Started) -> None:
            stop.arm()  # Ray is up: had it put its SIGTERM handler in place of ours
            shown.start(s)

        summary = run_campaign(ready, store=store, address=address, dashboard=dashboard,
                               rerun=flags.get("rerun", False),
                               on_start=on_start, on_result=on_result,
                               on_event=shown.event)
        stop.done = True  # the summary is printed whatever comes now
        shown.finish(summary)
    return print_end(err, out, summary, loaded, store or c.store, quiet, tracebacks)


class Stopper:
    """SIGINT, SIGTERM and SIGHUP (Ctrl-C, a scheduler's kill, `timeout`, systemd, a closed
    terminal or ssh session) stop the campaign the same way: the first raises
    KeyboardInterrupt (workers killed, their GPUs freed, the summary printed, exit 130); a
    second while that happens is noted, not raised (a KeyboardInterrupt inside the cleanup
    would skip the summary); a third quits at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.count = 0
        self.done = False  # the campaign is over: signals no longer interrupt it

    def handle(self, signum: int, frame: object) -> None:
        if self.done:
            return
        self.count += 1
        if self.count == 1:
            raise KeyboardInterrupt(f"signal {signum}")
        if self.count == 2:
            os.write(2, b"\nstopping: the workers are being stopped and the summary follows "
                        b"(a third signal quits at once)\n")
            return
        os.write(2, b"\nstopped at once: results stored so far are kept\n")
        os._exit(130)

    def arm(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, self.handle)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Stopper]:
    """Install a Stopper for SIGINT, SIGTERM and SIGHUP for the block (not outside the main thread:
    llem run called from a library keeps its caller's handlers)."""
    stop = Stopper()
    try:
        old = [(sig, signal.signal(sig, stop.handle)) for sig in Stopper.SIGNALS]
    except ValueError:  # not the main thread
        yield stop
        return
    try:
        yield stop
    finally:
        stop.done = True
        for sig, handler in old:
            # stopped by a signal: the summary is out; one more while the process exits
            # (Ray's shutdown) ends it as the first did, with 130, not the default kill
            signal.signal(sig, _exit_130 if stop.count else handler)


def _exit_130(signum: int, frame: object) -> None:
    os._exit(130)
