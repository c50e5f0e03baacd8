"""`llem submit`: run a campaign as a Ray Job on a cluster."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from llem.cli.addresses import check_dashboard
from llem.cli.given import check_job_id, check_store_text
from llem.config.load import load_campaign
from llem.credentials import collect, mask_shapes, redact
from llem.scheduler.submit import dashboard_url, follow, job_info, job_logs
from llem.scheduler.submit import follow as do_follow
from llem.scheduler.submit import stop as do_stop
from llem.scheduler.submit import submit as do_submit


@click.command()
@click.argument("grid", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--address", envvar="RAY_ADDRESS", required=True,
              help="The cluster's dashboard address, e.g. http://HEAD:8265 (or RAY_ADDRESS).")
@click.option("--store", help="Results store as the cluster sees it: a shared path or a URI. "
              "Default: the file's store, made absolute.")
@click.option("--wait", is_flag=True, help="Follow the job's logs until it ends.")
def submit(grid: Path, address: str, store: str | None, wait: bool) -> None:
    """Submit GRID to a Ray cluster as a Ray Job and print its id and dashboard URL.

    The grid's folder is uploaded as the job's working directory. The store must be
    reachable from the cluster (a shared filesystem path or an object-store URI).
    """
    loaded = load_campaign(grid)  # a bad file is refused here, before anything is sent

    target = store or loaded.campaign.store
    check_store_text(target, sent=True)  # as `llem run` does, and no credential for Ray
    if "://" not in target:
        target = str(Path(target).expanduser().resolve())
    held = sorted(collect())  # names only: a value never leaves this machine with the job
    check_address(address)
    sid = do_submit(grid, address, target)  # (a bad LLEM_SECRETS_FILE refused before this)
    click.echo(f"submitted {sid}")
    click.echo(f"dashboard: {mask_shapes(redact(dashboard_url(address)))}")  # no u:pw@
    click.echo(f"store: {mask_shapes(redact(target))}")

    if held:
        click.echo(f"not sent with the job: {', '.join(held)} (Ray shows a job's runtime_env "
                   "and metadata); the job uses the credentials set where its Ray runs, or "
                   "LLEM_SECRETS_FILE there", err=True)
    if wait:
        status = follow(address, sid, click.echo)
        click.echo(f"job {sid}: {status}")
        if status != "SUCCEEDED":
            raise SystemExit(1)


ADDRESS = click.option("--address", envvar="RAY_ADDRESS", required=True,
                       help="The cluster's dashboard address, e.g. http://HEAD:8265 "
                       "(or RAY_ADDRESS).")


@click.command()
@click.argument("job")
@ADDRESS
@click.option("--json", "as_json", is_flag=True, help="Print the job's info as JSON.")
def status(job: str, address: str, as_json: bool) -> None:
    """Status of a submitted campaign JOB (the id `llem submit` printed): PENDING, RUNNING,
    SUCCEEDED, FAILED or STOPPED, with Ray's message. Exit 1 when it failed or stopped."""
    import json
    import time

    check_job_id(job)
    check_address(address)
    info = job_info(address, job)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(f"{job}: {info['status']}")
        if info["message"]:
            click.echo(f"  {info['message']}")
        for key in ("start_time", "end_time"):
            if info[key]:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info[key] / 1000))
                click.echo(f"  {key.replace('_', ' ')}: {when}")
        click.echo(f"  entrypoint: {info['entrypoint']}")
    if info["status"] in ("FAILED", "STOPPED"):
        raise SystemExit(1)


@click.command()
@click.argument("job")
@ADDRESS
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the job "
              "ends; exit 1 unless it succeeded.")
def logs(job: str, address: str, follow: bool) -> None:
    """The driver's output of a submitted campaign JOB (progress, summary, errors)."""
    check_job_id(job)
    check_address(address)
    if not follow:
        click.echo(job_logs(address, job), nl=False)
        return
    final = do_follow(address, job, click.echo)
    click.echo(f"job {job}: {final}")
    if final != "SUCCEEDED":
        raise SystemExit(1)


@click.command()
@click.argument("job")
@ADDRESS
def stop(job: str, address: str) -> None:
    """Stop a submitted campaign JOB: its driver gets SIGTERM and kills its workers; what
    was stored stays, and submitting the same grid again resumes it."""
    check_job_id(job)
    check_address(address)
    if do_stop(address, job):
        click.echo(f"stopping {job}")
    else:
        click.echo(f"{job} had already ended")


def check_address(address: str) -> None:
    """The dashboard address, from --address or RAY_ADDRESS, before anything is sent."""
    source = click.get_current_context().get_parameter_source("address")
    check_dashboard(address, "RAY_ADDRESS" if source == ParameterSource.ENVIRONMENT
                    else "--address")
