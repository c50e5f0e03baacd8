"""Is each hub model of a campaign reachable, checked before Ray starts (and in a dry run)?

A model id the hub does not answer for used to cost 24 s of retries, exit 0, then a failed
job after 48 s. Here: one look per model, the local Hugging Face cache first (a model whose
config.json is cached passes, offline too), then, unless HF_HUB_OFFLINE is set, one
model_info call with a short timeout and no retry. What fails is one UserError line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from llem.config.load import PATH_PREFIXES, loads_from_hub
from llem.errors import UserError
from llem.models.builtin import is_builtin
from llem.prompts.hub_probe import ask

TIMEOUT_S = 5.0


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_models(loaded: Any) -> list[str]:
    """The campaign's models that a backend of it loads by hub id (not llem:, not a path)."""
    out: list[str] = []
    for part in loaded.parts():
        c = part.campaign
        if not any(loads_from_hub(b) for b in part.part_backends()):
            continue
        for m in c.models:
            if not is_builtin(m) and not m.startswith(PATH_PREFIXES) and m not in out:
                out.append(m)
    return out


def cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # a malformed id or cache: not cached
        return False


def problem(repo_id: str) -> str | None:
    """Why repo_id cannot be loaded from here, or None."""
    if cached(repo_id):
        return None
    if _offline():
        return (f"model {repo_id} is not in the local Hugging Face cache and HF_HUB_OFFLINE "
                "is set; download it first (`hf download " + repo_id + "`) or give a local path")
    try:
        from huggingface_hub import model_info
    except ImportError:
        return None  # no hub client here: the backend's environment decides
    answer = ask(lambda: model_info(repo_id, timeout=TIMEOUT_S))
    if answer is None:
        return None
    kind, why = answer
    if kind == "gated":
        return (f"model {repo_id} is gated on the Hugging Face hub and this token has no "
                "access; accept its terms on the hub and set HF_TOKEN")
    if kind == "missing":
        return (f"model {repo_id} is not on the Hugging Face hub (or is private: set "
                "HF_TOKEN to a token that can read it)")
    return (f"model {repo_id}: the Hugging Face hub cannot be reached from here ({why}); "
            "with the model in the local cache set HF_HUB_OFFLINE=1, or give a local path")


def check_hub_models(models: Iterable[str]) -> None:
    """One UserError for the first model that cannot be loaded from here."""
    for m in models:
        why = problem(m)
        if why:
            raise UserError(why)

