"""A backend that runs in server mode only (endpoint: it sends requests to a server that
already runs, llem.config.modes.served_name) reached by offline points (no mode, or the
offline of `mode: [offline, server]`): each such job failed after Ray started, "the
endpoint backend runs in server mode only".

Refused, not dropped, as the rest of this family is (a `mode: server` that reaches a backend
without a server, a dtype or top_k a backend does not take: llem.config.parts): an offline
point of the endpoint is a point the grid asked for that cannot run, not a setting it leaves
unused (those are reset: llem.config.modes), and dropping it would measure fewer points than
written without a word. The fix is one line: scope the mode to the endpoint.
"""

from __future__ import annotations

import dataclasses

from llem.config.grid import combinations
from llem.config.loaded import Loaded
from llem.config.modes import served_name
from llem.config.yaml_source import Loc


def check_server_only(loaded: Loaded) -> None:
    """A ConfigError at the line that gives a server-only backend an offline point: its
    offline mode value where one was written, else where the backend is named."""
    for k, part in enumerate(loaded.parts()):
        alone = dataclasses.replace(part, experiments=[], _axes={})
        for backend in part.part_backends():
            if not served_name(backend):
                continue
            for values, where in combinations(alone, "mode".__eq__, [backend]):
                if values.get("mode", "offline") == "server":
                    continue
                written = "mode" in where
                loc = tuple(where["mode"]) if written else _named(loaded, k, backend)
                said = "the offline points this value gives it" if written else \
                    "its points here have no mode: server (offline is the default) and"
                raise loaded.source.error(
                    loc, f"backend '{backend}' runs in server mode only (it sends requests to "
                    f"a server that already runs): {said} would fail every job after Ray "
                    "starts", hint="set grid: {mode: server} (with a server: section), or give "
                    f"{backend} alone mode: server: per_backend: {{{backend}: {{mode: server}}}} "
                    "(or an experiment)")


def _named(loaded: Loaded, k: int, backend: str) -> Loc:
    """Where part k (0: the sweep, then each experiment) names backend."""
    if k == 0:
        names = loaded.campaign.backends
        return ("backends", names.index(backend)) if backend in names else ("backends",)
    exp = loaded.campaign.experiments[k - 1]
    if exp.get("backend") == backend:
        return ("experiments", k - 1, "backend")
    listed = exp.get("backends")
    if isinstance(listed, list) and backend in listed:
        return ("experiments", k - 1, "backends", listed.index(backend))
    return ("experiments", k - 1)
