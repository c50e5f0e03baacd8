"""The library entry point: `from llem import run_campaign`.

One sequence, shared by the CLI, the tests and the benchmarks: load the grid (unless given
a loaded one), read every prompt file, resolve each backend's environment, open the store,
then connect to Ray (or start an embedded one) and run the driver. Everything a user can get
wrong is found before Ray starts, and nothing here prints: progress reaches the caller
through on_event, on_start and on_result.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llem.config.checks import check_datasets
from llem.config.grid import count_points
from llem.config.hub_check import check_hub_models, hub_models
from llem.config.load import load_campaign
from llem.config.loaded import Loaded
from llem.envs.environments import preflight
from llem.harness.server.served import LOG_DIR_ENV
from llem.scheduler.cluster import connect
from llem.scheduler.driver import Driver
from llem.scheduler.here import refuse_here
from llem.scheduler.state import Summary
from llem.store.run_row import RunRow
from llem.store.store import Store


@dataclass(frozen=True)
class Started:
    """What a campaign is about to run, handed to on_start once Ray is up."""

    campaign: str
    points: int
    cycles: int
    jobs: int  # upper bound: points x cycles (include/exclude and resume make it fewer)
    order: str
    seed: int | None
    ray: str  # "embedded", "existing" or the address joined
    store: str  # the store's URI


@dataclass(frozen=True)
class Prepared:
    """A campaign that passed every check made before Ray starts (prepare)."""

    loaded: Loaded
    runtime_envs: dict[str, dict[str, Any]]  # backend -> its Ray runtime_env


def prepare(grid: str | Path | Loaded | Prepared, overrides: dict[str, Any] | None = None,
            runtime_envs: dict[str, dict[str, Any]] | None = None,
            store: str | Path | Store | None = None, plan_only: bool = False) -> Prepared:
    """Everything checked before Ray starts: the grid, its prompt files and datasets, each
    backend's environment (its Ray runtime_env), and with store, that results can be
    written there (Store.check_writable: a folder, or one that can be made, no file where
    llem writes a folder, a probe file created and removed; a URI that answers). A mistake
    raises UserError (StoreError for the store). Each hub model must be in the local HF
    cache or answer on the hub (llem.config.hub_check). plan_only (a dry run): a backend
    environment missing here is a note in loaded.notes, not an error."""
    if isinstance(grid, Prepared):
        if store is not None:
            check_store(store, grid.loaded.campaign.name)
        return grid
    loaded = grid if isinstance(grid, Loaded) else load_campaign(grid, overrides)
    check_datasets(loaded)
    check_hub_models(hub_models(loaded))  # seconds, not a failed job a minute later
    c = loaded.campaign
    envs = runtime_envs if runtime_envs is not None else \
        preflight(c.backends, c.environments, plan_only, loaded.notes, loaded.source)
    if store is not None:
        check_store(store, c.name)
    return Prepared(loaded, envs)


def check_store(store: str | Path | Store, campaign: str | None = None) -> Store:
    """The store, checked writable for the campaign (one StoreError line otherwise)."""
    st = store if isinstance(store, Store) else Store(store)
    st.check_writable(campaign)
    return st


def run_campaign(grid: str | Path | Loaded | Prepared, *, store: str | Path | Store | None = None,
                 address: str | None = None, overrides: dict[str, Any] | None = None,
                 runtime_envs: dict[str, dict[str, Any]] | None = None,
                 dashboard: bool = False,
                 on_start: Callable[[Started], None] | None = None,
                 on_result: Callable[[RunRow, Summary], None] | None = None,
                 on_event: Callable[[str], None] | None = None,
                 rerun: bool = False
                 ) -> Summary:
    """Run a campaign to completion and return its summary.

    grid: a grid file's path, a campaign loaded already (llem.config.load) or prepared
    (prepare: what `llem run` checks before its dry run); overrides
    lay values over the file (top-level keys or dotted parameter paths, as CLI flags do).
    store: a path, URI or Store (default: the grid's `store:`). address: a Ray cluster
    (default RAY_ADDRESS, else an embedded local Ray; a Ray already initialised in this
    process is used as it is). runtime_envs: each backend's Ray runtime_env, when the
    caller resolved them (default: from the grid's `environments:`). on_result is called
    with each result's runs row (a llem.store.run_row.RunRow: its columns are attributes)
    and the running summary as it goes to the store. on_event is called with a few words
    on what is happening while no result comes: starting or joining Ray, starting a worker,
    a worker loading a model.

    Jobs already stored with status ok are skipped: calling it again resumes. rerun: run
    every job again (a new measurement, in files of its own beside the earlier ones, which
    stay readable: the store's runs view shows the newest, runs_all every one). The store
    is checked writable before Ray starts. Ctrl-C stops the workers and returns the summary
    with interrupted set.
    """
    ready = prepare(grid, overrides, runtime_envs)
    loaded = ready.loaded
    refuse_here(loaded, address)  # Ray would start here: what this machine lacks, first
    c = loaded.campaign
    if c.order == "shuffled" and c.seed is None:  # drawn now, recorded with every row
        c = loaded.campaign = c.model_copy(update={"seed": secrets.randbelow(2**31)})
    st = check_store(store if store is not None else c.store, c.name).new_session(rerun)
    if st.on_warning is None and on_event is not None:  # files the resume check skipped
        st.on_warning = lambda m: on_event(f"warning: {m}")
    event = on_event or (lambda m: None)
    target = address or os.environ.get("RAY_ADDRESS")
    event(f"connecting to Ray at {target}" if target else
          "starting Ray on this machine (takes a few seconds)")
    t0 = time.perf_counter()
    where = connect(address, dashboard=dashboard)
    event(f"Ray ready ({where}, {time.perf_counter() - t0:.1f} s)")
    points = count_points(loaded)
    if on_start is not None:
        on_start(Started(c.name, points, c.cycles, points * c.cycles, c.order, c.seed, where,
                         st.uri))
    if st.local:  # server logs beside the store (their paths are in the rows)
        os.environ[LOG_DIR_ENV] = str(Path(st.root) / "logs" / f"campaign={c.name}")
    return Driver(loaded, st, on_result=on_result, runtime_envs=ready.runtime_envs,
                  on_event=on_event).run()
