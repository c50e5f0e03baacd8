"""Can an HF dataset be loaded from here? Asked once, with a short timeout, before `datasets`
tries: offline, load_dataset retries the hub for ~25 s before it fails, and a typo or a
gated dataset costs the same. A local path, a dataset in the local cache (which `datasets`
falls back on) and HF_HUB_OFFLINE (where `datasets` answers at once) are left to it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

TIMEOUT_S = 5.0
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(?:/[A-Za-z0-9][\w.-]*)?")
TRUE = ("1", "true", "yes", "on")


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in TRUE
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def cached(repo_id: str) -> bool:
    """Is the dataset in the `datasets` cache or the hub cache of this machine?"""
    roots: list[Path] = []
    try:
        from datasets import config

        roots.append(Path(config.HF_DATASETS_CACHE) / repo_id.replace("/", "___"))
    except ImportError:
        pass
    try:
        from huggingface_hub import constants

        roots.append(Path(constants.HF_HUB_CACHE) / f"datasets--{repo_id.replace('/', '--')}")
    except ImportError:
        pass
    return any(r.exists() for r in roots)


def ask(lookup: Callable[[], object]) -> tuple[str, str] | None:
    """One hub lookup (model_info or dataset_info with a short timeout): None when it
    answers, else ("gated" | "missing" | "unreachable", why). The model check before Ray
    (llem.config.hub_check) and the dataset check here read the hub the same way."""
    try:
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    except ImportError:
        return None
    try:
        lookup()
    except GatedRepoError:
        return "gated", ""
    except RepositoryNotFoundError:
        return "missing", ""
    except Exception as exc:  # no network, DNS, timeout, proxy, 5xx
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        return "unreachable", f"{type(exc).__name__}: {why}"
    return None


def problem(repo_id: str, what: str) -> str | None:
    """Why the dataset repo_id cannot be loaded from here (what names it), or None."""
    if offline() or not HUB_ID.fullmatch(repo_id) or Path(repo_id).expanduser().exists():
        return None
    try:
        from huggingface_hub import dataset_info
    except ImportError:
        return None
    answer = ask(lambda: dataset_info(repo_id, timeout=TIMEOUT_S))
    if answer is None:
        return None
    kind, why = answer
    if kind == "gated":
        return (f"{what} is gated on the Hugging Face hub and this token has no access; "
                "accept its terms on the hub and set HF_TOKEN")
    if kind == "missing":
        return (f"{what} is not on the Hugging Face hub (or is private: set HF_TOKEN to a "
                "token that can read it); or use dataset.source: file")
    if cached(repo_id):
        return None  # `datasets` falls back on its cached copy
    return (f"{what}: the Hugging Face hub cannot be reached from here ({why}) and the "
            "dataset is not in the local cache; connect to a network, or with the dataset "
            "cached set HF_HUB_OFFLINE=1, or copy its prompts to a .jsonl file "
            "(dataset.source: file)")
