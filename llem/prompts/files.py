"""Prompt sets: the builtin one shipped with llem, and user files (.jsonl or plain text).

No torch/transformers here: the driver loads prompts before any backend is imported.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

BUILTIN_PATH: Path = Path(__file__).parent / "builtin.jsonl"


@dataclass(frozen=True)
class Prompt:
    """One prompt; id and task let results be traced back to the text that was run."""

    id: str
    task: str
    text: str


def load_builtin() -> list[Prompt]:
    """The ~300 prompts shipped with llem (varied tasks and lengths, English)."""
    return load_file(BUILTIN_PATH)


def load_file(path: Path) -> list[Prompt]:
    """Prompts from a .jsonl file (objects with "prompt" or "text") or plain text (one a line).

    Errors name the file and line so a user can fix the file without a traceback.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix.lower() == ".jsonl":
        prompts = _parse_jsonl(path, lines)
    else:
        prompts = [Prompt(f"line-{n}", "file", line.strip())
                   for n, line in enumerate(lines, 1) if line.strip()]
    if not prompts:
        raise ValueError(f"{path}: no prompts (the file is empty)")
    return prompts


def _parse_jsonl(path: Path, lines: list[str]) -> list[Prompt]:
    prompts: list[Prompt] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
        text = obj.get("prompt", obj.get("text"))
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}:{n}: no non-empty string under \"prompt\" or \"text\"")
        prompts.append(Prompt(str(obj.get("id", f"line-{n}")), str(obj.get("task", "file")),
                              text))
    return prompts


def select(prompts: list[Prompt], n: int, seed: int = 0) -> list[Prompt]:
    """n prompts in a seeded order, cycling when n exceeds the pool.

    random.Random(seed).shuffle is stable across Python runs and versions (it does not use
    hash()), so the same seed runs the same prompts in every campaign.
    """
    if n < 0:
        raise ValueError(f"cannot select a negative number of prompts ({n})")
    if not prompts:
        raise ValueError("cannot select from an empty prompt list")
    order = list(prompts)
    random.Random(seed).shuffle(order)
    return [order[i % len(order)] for i in range(n)]
