"""llem: measure what LLM inference costs (energy, throughput, latency) across backends, on Ray.

    from llem import run_campaign
    summary = run_campaign("configs/demo.yaml", store="results")

Folders, one per stage a job passes through: config/ (grid files -> jobs), prompts/,
models/, backends/, measure/, store/, envs/, harness/ (inside a worker), report/,
scheduler/ (Ray), cli/. The README's Layout section says what each holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llem.version import __version__

__all__ = ["__version__", "run_campaign"]

if TYPE_CHECKING:
    from llem.api import run_campaign


def __getattr__(name: str) -> Any:
    """run_campaign loads on first use: it imports Ray, which a worker process importing
    any llem module (and so this package) must not pay for."""
    if name == "run_campaign":
        from llem.api import run_campaign

        return run_campaign
    raise AttributeError(f"module 'llem' has no attribute {name!r}")
