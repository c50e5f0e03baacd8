"""What `llem submit`, `status`, `logs` and `stop` are given on the command line, checked
as `llem run` checks it, before a cluster is contacted (an empty option value is refused
for every command by llem.cli.values)."""

from __future__ import annotations

import re

from llem.credentials import mask_shapes, redact, token_shaped
from llem.errors import UserError, one_line

# A Ray Job's id as `llem submit` makes it (llem-GRID-DATE-TIME-N), as Ray draws one
# (raysubmit_ and 16 letters or digits) or a driver's hex job id: letters, digits, '.', '_'
# and '-'. Ray sends it in a URL path (/api/jobs/ID) and names a log file after it
# (job-driver-ID.log): a '/', '..', '?', a space or a control character reached another
# route, or no job at all.
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,239}")


def check_store_text(store: str, sent: bool = False) -> None:
    """The store as written: what a Store refuses of its text (check_root_text: spaces
    around it, a control character, user:pw@host without a scheme); with sent (the
    command line of a job sent to a cluster) no credential in it either."""
    from llem.store.writable import check_root_text  # (pyarrow: not for status, logs, stop)

    check_root_text(store)
    if sent and token_shaped(store):
        raise UserError(f"--store '{shown(store)}' holds a credential (a URL's user or "
                        "password, or a secret query parameter): Ray shows a submitted "
                        "job's command line in its dashboard and `llem status`; give the "
                        "URI without it, and set the credentials where the cluster runs "
                        "(its environment, or LLEM_SECRETS_FILE there)")


def check_job_id(job: str) -> None:
    """JOB of `llem status`, `logs` and `stop`: the form of a job id, before it is sent."""
    if not job.strip():
        raise UserError("JOB is empty: give the id `llem submit` printed "
                        "(llem-GRID-DATE-TIME-N), or a Ray job id (raysubmit_...)")
    if not JOB_ID.fullmatch(job):
        raise UserError(f"JOB '{shown(job)}' is not a job id: give the id `llem submit` "
                        "printed (llem-GRID-DATE-TIME-N) or a Ray job id (raysubmit_...): "
                        "letters, digits, '.', '_' and '-', at most 240")


def shown(text: str, limit: int = 80) -> str:
    """text for a message: one line, masked, short."""
    out = one_line(mask_shapes(redact(text)))
    return out if len(out) <= limit else out[:limit - 3] + "..."
