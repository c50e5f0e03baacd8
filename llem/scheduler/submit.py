"""Submit a campaign to a Ray cluster as a Ray Job (JobSubmissionClient).

The grid file's folder travels as the job's working_dir and the llem package as a
py_module, so the cluster needs only Ray and llem's light dependencies in the Python that
ran `ray start`. Ray 2.60 enables token auth by default: the client needs RAY_AUTH_MODE=token
and the cluster's token (~/.ray/auth_token or RAY_AUTH_TOKEN); clusters started with
RAY_AUTH_MODE=disabled need neither.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from pathlib import Path
from typing import Any

from llem.credentials import mask_shapes, redact
from llem.errors import UserError

EXCLUDES = [".git", ".venv", "results", "*.parquet", "__pycache__", ".staging"]
AGENT_WAIT_S = 180.0
AUTH_HINT = ("the cluster wants a token: export RAY_AUTH_MODE=token and put the cluster's "
             "token in ~/.ray/auth_token (or RAY_AUTH_TOKEN)")


def client(address: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as exc:
        raise UserError(_explain(exc, address)) from None


def _explain(exc: Exception, address: str) -> str:
    text = str(exc)
    address = mask_shapes(redact(address))  # a dashboard behind basic auth: http://u:pw@h
    if "401" in text or "Unauthorized" in text:
        return f"{address}: unauthorized: {AUTH_HINT}"
    if "403" in text or "Forbidden" in text:
        return f"{address}: the token was refused: use the cluster's own ~/.ray/auth_token"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"cannot reach the Ray cluster at {address}: {first[:200]}"


def submit(grid: Path, address: str, store: str, extra_args: list[str] | None = None,
           runtime_env: dict[str, Any] | None = None) -> str:
    """Submit `llem run` of grid as a Ray Job; return its submission id."""
    c = client(address)
    package = Path(__file__).resolve().parents[1]  # the llem package
    args = ["python", "-m", "llem", "run", grid.name, "--store", store, "--quiet",
            *(extra_args or [])]
    env: dict[str, Any] = {"working_dir": str(grid.resolve().parent), "excludes": EXCLUDES,
                           "py_modules": [str(package)], **(runtime_env or {})}
    env_vars = {k: os.environ[k] for k in ("LLEM_CACHE",) if k in os.environ}
    if env_vars:
        env["env_vars"] = env_vars
    sid = f"llem-{job_name(grid)}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid() % 10000}"
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            return str(c.submit_job(entrypoint=shlex.join(args), runtime_env=env,
                                    submission_id=sid, metadata={"llem_grid": grid.name}))
        except Exception as exc:
            # A head started moments ago answers 500 "No available agent" until its job
            # agent is up: wait for it rather than fail a submit that would work in seconds.
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise UserError(_explain(exc, address)) from None
            time.sleep(1.0)


def job_name(grid: Path) -> str:
    """The grid file's name as a part of a job id (llem.cli.given.JOB_ID): letters, digits,
    '.', '_' and '-' (a space or '#' in a file name made an id `llem status` cannot ask
    about), at most 100."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", grid.stem)[:100].strip("-.") or "grid"


def follow(address: str, submission_id: str, echo: Any) -> str:
    """Stream the job's logs until it ends; return its final status."""
    import asyncio

    c = client(address)

    async def tail() -> None:
        async for lines in c.tail_job_logs(submission_id):
            echo(redact(lines), nl=False)  # a job's output: masked as llem's own

    asyncio.run(tail())
    return str(c.get_job_status(submission_id))


def dashboard_url(address: str) -> str:
    return address.rstrip("/") + "/#/jobs"


def _ask(address: str, submission_id: str, method: str) -> Any:
    """One JobSubmissionClient call about a submitted job; its failure is one UserError
    line (an unknown id says so)."""
    c = client(address)
    try:
        return getattr(c, method)(submission_id)
    except Exception as exc:
        raise UserError(_job_error(exc, address, submission_id)) from None


def job_info(address: str, submission_id: str) -> dict[str, Any]:
    """Status, message, entrypoint and times of a submitted campaign (JobSubmissionClient)."""
    info = _ask(address, submission_id, "get_job_info")
    return {"id": submission_id, "status": str(info.status),
            "message": info.message and redact(info.message),
            "entrypoint": redact(info.entrypoint),  # a store URL's password (older llem)
            "start_time": info.start_time,
            "end_time": info.end_time, "metadata": dict(info.metadata or {})}


def job_logs(address: str, submission_id: str) -> str:
    return redact(str(_ask(address, submission_id, "get_job_logs")))


def stop(address: str, submission_id: str) -> bool:
    """Ask Ray to stop the job (SIGTERM to the driver, which kills its workers)."""
    return bool(_ask(address, submission_id, "stop_job"))


def _job_error(exc: Exception, address: str, submission_id: str) -> str:
    text = str(exc)
    if "404" in text or "does not exist" in text or "not found" in text.lower():
        return f"no job {submission_id!r} on the cluster at {mask_shapes(redact(address))} " \
            "(llem submit prints the id)"
    return _explain(exc, address)
