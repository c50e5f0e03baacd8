"""Resolve a dataset setting into the prompt texts a job runs (done once, in the driver).

llem.config.checks runs the same resolution for every distinct dataset of a campaign before
anything starts, so a missing or malformed prompt file is a one-line error naming the grid
file's line, not a failure after Ray is up. A setting is anything shaped like
llem.config.models.Dataset (DatasetSpec): prompts sit below config in the layers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from llem.errors import UserError
from llem.prompts.files import Prompt, load_builtin, load_file, select
from llem.prompts.hub_probe import problem as hub_problem

TEXT_COLUMNS = ("prompt", "text", "question", "instruction", "input", "content")
# Named sources: a dataset on the Hugging Face hub that a source name stands for
# (HF id, split, column). ai_energy_score: the AI Energy Score text-generation prompts
# (1,000 texts from WikiText, OSCAR and UltraChat).
NAMED: dict[str, tuple[str, str, str]] = {
    "ai_energy_score": ("AIEnergyScore/text_generation", "train", "text")}
CHAT_COLUMNS = ("messages", "conversations", "conversation")


class DatasetSpec(Protocol):
    """What a dataset setting says (llem.config.models.Dataset has these fields)."""

    @property
    def source(self) -> str: ...
    @property
    def path(self) -> str | None: ...
    @property
    def split(self) -> str: ...
    @property
    def column(self) -> str | None: ...
    @property
    def num_prompts(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def order(self) -> str: ...


MAX_FILE_BYTES = 64 * 2**20  # a prompt file is read whole, in the driver and its checks


class FileProblem(Exception):
    """A prompt file that cannot be used: the message, and how to fix it (hint)."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def load_prompts(ds: DatasetSpec, base_dir: Path) -> list[str]:
    """The dataset's num_prompts prompts: the first ones (order "file") or drawn in an
    order its seed decides (order "sample")."""
    if ds.source == "builtin":
        pool: list[Prompt] = load_builtin()
    elif ds.source == "file":
        try:
            pool = file_pool(ds, base_dir)
        except FileProblem as exc:
            raise UserError(f"dataset.path: {exc} ({exc.hint})") from None
    else:  # hf, or a named source on the hub
        pool = load_hf(ds)
    if not pool:
        raise UserError(f"dataset {ds.path or ds.source} has no prompts")
    return [p.text for p in select(pool, ds.num_prompts, ds.seed, ds.order)]


def file_pool(ds: DatasetSpec, base_dir: Path) -> list[Prompt]:
    """The prompts of a file dataset; every problem is a FileProblem (message, hint)."""
    if not ds.path:
        raise FileProblem("dataset.source is 'file' but dataset.path is not set",
                           "set dataset.path to a prompt file")
    try:
        path = (base_dir / Path(ds.path).expanduser()).resolve()
    except (RuntimeError, OSError) as exc:  # ~nosuchuser, a symlink loop
        raise FileProblem(f"cannot resolve prompt file path {ds.path!r}: {exc}",
                           "fix the path") from None
    if not path.exists():
        raise FileProblem(f"prompt file {path} does not exist",
                           "paths are relative to the grid file's folder")
    if not path.is_file():
        raise FileProblem(f"prompt file {path} is not a file", "point it at a .jsonl file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:  # read whole (the driver holds it): bounded, not a surprise
        raise FileProblem(f"prompt file {path} is {size / 2**20:.0f} MiB, over the "
                          f"{MAX_FILE_BYTES // 2**20} MiB limit of a prompt file",
                          "keep the prompts a campaign runs in a smaller file, or use "
                          "dataset.source: hf")
    try:
        if not path.read_bytes().strip():
            raise FileProblem(f"prompt file {path} is empty", "add one prompt per line")
        pool = load_file(path)
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise FileProblem(f"prompt file {path}:{line} is not UTF-8 text",
                           "save it as UTF-8") from None
    except ValueError as exc:
        raise FileProblem(f"bad prompt file: {exc}", "fix that line of the prompt file") \
            from None
    except OSError as exc:
        raise FileProblem(f"cannot read prompt file {path}: {exc.strerror or exc}",
                           "check its permissions") from None
    if not pool:
        raise FileProblem(f"prompt file {path} has no prompts",
                           "add one prompt per line")
    return pool


_HF_CACHE: dict[str, list[Prompt]] = {}


def load_hf(ds: DatasetSpec) -> list[Prompt]:
    """The dataset's prompts (loaded once per process: the pre-flight check and the driver
    share it). The prompt column is dataset.column, else the first of TEXT_COLUMNS, else a
    chat column (CHAT_COLUMNS: OpenAI messages or ShareGPT conversations), whose first user
    turn is the prompt."""
    path, split, column = hf_source(ds)
    key = repr((path, split, column))
    if key not in _HF_CACHE:
        _HF_CACHE[key] = _read_hf(ds.source, path, split, column)
    return _HF_CACHE[key]


def hf_source(ds: DatasetSpec) -> tuple[str | None, str, str | None]:
    """The (HF dataset id, split, column) a dataset setting loads: a named source's own,
    else dataset.path, split and column."""
    if ds.source in NAMED:
        return NAMED[ds.source]
    return ds.path, ds.split, ds.column


def _read_hf(source: str, path: str | None, split: str, column: str | None) -> list[Prompt]:
    what = f"the {source} prompts (HF dataset {path})" if source in NAMED else \
        f"HF dataset '{path}'"
    if not path:
        raise UserError("dataset.source is 'hf' but dataset.path (the dataset id) is not set")
    try:
        import datasets
    except ImportError:
        raise UserError(f"dataset.source '{source}' needs the `datasets` package: "
                        "pip install 'llem[hf]' (or pip install datasets)") from None
    datasets.disable_progress_bars()
    why = hub_problem(path, what)  # seconds, not 25 s of the library's retries
    if why:
        raise UserError(why)
    try:
        data = datasets.load_dataset(path, split=split)
    except Exception as exc:
        offline = " (offline: HF_HUB_OFFLINE=1 and not in the cache)" if \
            os.environ.get("HF_HUB_OFFLINE") == "1" else " (offline? gated? a typo?)"
        instead = "or copy its prompts to a .jsonl file and use dataset.source: file" \
            if source in NAMED else "or use dataset.source: file"
        raise UserError(f"cannot load {what} (split {split}): "
                        f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
                        f"{offline}; {instead}") from None
    names = list(data.column_names)
    col = column or next((c for c in TEXT_COLUMNS + CHAT_COLUMNS if c in names), None)
    if col is None or col not in names:
        missing = f"column {col!r}" if col else "text column"
        raise UserError(f"{what} has no {missing} (columns: {', '.join(names)}); "
                        "set dataset.column")
    chat = col in CHAT_COLUMNS and column is None
    texts = (_first_user_turn(v) if chat else v if isinstance(v, str) else str(v)
             for v in data[col])
    task = "hf" if source not in NAMED else source
    return [Prompt(f"{path}-{i}", task, t) for i, t in enumerate(texts) if t and t.strip()]


def _first_user_turn(turns: Any) -> str:
    """The first human/user message of a chat (OpenAI role/content or ShareGPT from/value)."""
    if not isinstance(turns, list):
        return ""
    for t in turns:
        if isinstance(t, dict) and (t.get("role") or t.get("from")) in ("user", "human"):
            return str(t.get("content") or t.get("value") or "")
    return ""
