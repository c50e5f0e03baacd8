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


def load_builtin() -> Prompts:
    """The ~300 prompts shipped with llem (varied tasks and lengths, English)."""
    return load_file(BUILTIN_PATH)


class Prompts(list[Prompt]):
    """A file's prompts, and how many metadata lines it skipped."""

    skipped: int = 0


def load_file(path: Path) -> Prompts:
    """Prompts from a .jsonl file (objects with "prompt" or "text") or plain text (one a line).

    A JSONL object whose keys all start with "_" (a provenance header such as {"_source":
    ...}) is metadata: skipped, and counted in the result's `skipped`. Errors name the file
    and line so a user can fix the file without a traceback.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8-sig").splitlines()  # a BOM (Notepad) is no text
    if path.suffix.lower() == ".jsonl":
        prompts = _parse_jsonl(path, lines)
    else:
        prompts = Prompts(Prompt(f"line-{n}", "file", line.strip())
                          for n, line in enumerate(lines, 1) if line.strip())
    if not prompts:
        what = f"only {prompts.skipped} metadata lines" if prompts.skipped else "the file is empty"
        raise ValueError(f"{path}: no prompts ({what})")
    return prompts


def _parse_jsonl(path: Path, lines: list[str]) -> Prompts:
    prompts = Prompts()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
        except RecursionError:  # [[[[...: an internal error from the decoder
            raise ValueError(f"{path}:{n}: invalid JSON (nested too deeply)") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
        if obj and all(str(k).startswith("_") for k in obj):
            prompts.skipped += 1  # metadata (a provenance header): not a prompt
            continue
        text = obj.get("prompt", obj.get("text"))
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}:{n}: no non-empty string under \"prompt\" or \"text\"")
        if not _unicode(text):  # "\ud800": every job failed in the tokenizer, after Ray
            raise ValueError(f"{path}:{n}: the prompt holds an escape of half a UTF-16 pair "
                             "(\\ud800-\\udfff alone), which is no character")
        prompts.append(Prompt(str(obj.get("id", f"line-{n}")), str(obj.get("task", "file")),
                              text))
    return prompts


def _unicode(text: str) -> bool:
    """Can the text be encoded (no lone surrogate, which JSON's \\u escapes can make)?"""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def select(prompts: list[Prompt], n: int, seed: int = 0, order: str = "sample") -> list[Prompt]:
    """n prompts, cycling when n exceeds the pool: in a seeded order (order "sample"), or
    the first n in the pool's own order (order "file").

    random.Random(seed).shuffle is stable across Python runs and versions (it does not use
    hash()), so the same seed runs the same prompts in every campaign.
    """
    if n < 0:
        raise ValueError(f"cannot select a negative number of prompts ({n})")
    if not prompts:
        raise ValueError("cannot select from an empty prompt list")
    if order not in ("sample", "file"):
        raise ValueError(f"unknown prompt order {order!r} (sample or file)")
    pool = list(prompts)
    if order == "sample":
        random.Random(seed).shuffle(pool)
    return [pool[i % len(pool)] for i in range(n)]
