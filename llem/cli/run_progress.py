"""What `llem run` shows while it runs (on stderr).

On a terminal: a progress bar whose status says what is happening before any result comes
(starting Ray, starting a worker, a worker loading its model), then the counts and the last
result, with the time left once a job has finished. Elsewhere (a pipe, a CI log): one line
per step and a progress line at most every LOG_EVERY_S seconds. Quiet: nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.text import Text

from llem.cli.term import Out, plural
from llem.credentials import redact

if TYPE_CHECKING:
    from llem.api import Started
    from llem.scheduler.state import Summary
    from llem.store.run_row import RunRow

LOG_EVERY_S = 30.0


def clock(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class EtaColumn(ProgressColumn):
    """The time left, counting down from the estimate made at the last result; blank until
    a job has finished (before that there is nothing to estimate from)."""

    def render(self, task: Task) -> Text:
        eta_at = task.fields.get("eta_at")
        if eta_at is None or task.finished:
            return Text("")
        return Text(f"ETA {clock(eta_at - time.time())}", style="progress.remaining")


class RunProgress:
    """Progress of one campaign; its methods are api.run_campaign's callbacks."""

    def __init__(self, err: Out, name: str, jobs_hint: int, quiet: bool) -> None:
        self.err, self.name, self.quiet = err, name, quiet
        self.live = not quiet and err.is_terminal  # a bar; else lines (or nothing: quiet)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), EtaColumn(),
            TextColumn("{task.fields[status]}", table_column=Column(no_wrap=True,
                                                                    overflow="ellipsis")),
            console=err, disable=not self.live)
        self.task = self.progress.add_task(escape(name), total=None, status="starting",
                                           eta_at=None)
        self.hint = jobs_hint
        self.first_start: float | None = None  # the earliest started_at of this session
        self.results = 0  # results of this session (ok or failed; skipped ones are not)
        self.logged = time.monotonic()

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def event(self, message: str) -> None:
        """What is happening while no result comes (api.run_campaign's on_event)."""
        text = redact(message)
        if self.live:
            self.progress.update(self.task, status=escape(text))
        elif not self.quiet:
            self.err.print(escape(text), highlight=False)

    def start(self, s: Started) -> None:
        order = f"order {s.order}" + (f" (seed {s.seed})" if s.order == "shuffled" else "")
        if not self.quiet:
            self.err.print(escape(
                f"{s.campaign}: up to {plural(s.jobs, 'job')} ({plural(s.points, 'point')} x "
                f"{plural(s.cycles, 'cycle')}, {order}) on Ray ({redact(s.ray)}); store "
                f"{s.store}"), highlight=False)
        self.progress.update(self.task, total=s.jobs)

    def result(self, row: RunRow, s: Summary) -> None:
        """A result stored: counts, the last result, and the time left."""
        now = time.time()
        self.results += 1
        if row.started_at is not None:
            start = min(float(row.started_at), now)
            self.first_start = start if self.first_start is None else \
                min(self.first_start, start)
        done = s.ok + s.failed + s.skipped
        total = max(self.hint, s.total)
        eta_at = None
        if self.first_start is not None and done < total:
            per_job = (now - self.first_start) / self.results  # workers in parallel included
            eta_at = now + per_job * (total - done)
        energy = f"{row.energy_j:.1f} J" if row.energy_j is not None else "energy n/a"
        tps = f" {row.tokens_per_s:.1f} tok/s" if row.tokens_per_s else ""
        self.progress.update(self.task, completed=done, total=total, eta_at=eta_at,
                             status=f"ok {s.ok} failed {s.failed} | last: {energy}{tps}")
        if not self.live and not self.quiet and time.monotonic() - self.logged >= LOG_EVERY_S:
            self.logged = time.monotonic()
            left = f", about {clock(eta_at - now)} left" if eta_at is not None else ""
            self.err.print(f"{done}/{total} done ({s.ok} ok, {s.failed} failed){left}",
                           highlight=False)

    def finish(self, s: Summary) -> None:
        """The bar's last state: what was done of the whole, never forced to complete."""
        self.progress.update(self.task, completed=s.ok + s.failed + s.skipped, total=s.total,
                             eta_at=None, status="interrupted" if s.interrupted else "done")
