"""Resolve a Dataset setting into the prompt texts a job runs (done once, in the driver)."""

from __future__ import annotations

from pathlib import Path

from llem.config.models import Dataset
from llem.errors import UserError
from llem.prompts import Prompt, load_builtin, load_file, select

TEXT_COLUMNS = ("prompt", "text", "question", "instruction", "input", "content")


def load_prompts(ds: Dataset, base_dir: Path) -> list[str]:
    """The dataset's num_prompts prompts, chosen deterministically by its seed."""
    if ds.source == "builtin":
        pool = load_builtin()
    elif ds.source == "file":
        if not ds.path:
            raise UserError("dataset.source is 'file' but dataset.path is not set")
        path = (base_dir / Path(ds.path).expanduser()).resolve()
        if not path.is_file():
            raise UserError(f"prompt file {path} does not exist (dataset.path)")
        try:
            pool = load_file(path)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    else:
        pool = _load_hf(ds)
    if not pool:
        raise UserError(f"dataset {ds.path or ds.source} has no prompts")
    return [p.text for p in select(pool, ds.num_prompts, ds.seed)]


def _load_hf(ds: Dataset) -> list[Prompt]:
    if not ds.path:
        raise UserError("dataset.source is 'hf' but dataset.path (the dataset id) is not set")
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError:
        raise UserError("dataset.source 'hf' needs the `datasets` package: "
                        "pip install datasets") from None
    try:
        data = datasets.load_dataset(ds.path, split=ds.split)
    except Exception as exc:
        raise UserError(f"cannot load HF dataset '{ds.path}' (split {ds.split}): "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]} "
                        "(offline? set dataset.source: file)") from None
    column = ds.column or next((c for c in TEXT_COLUMNS if c in data.column_names), None)
    if column is None or column not in data.column_names:
        raise UserError(f"HF dataset '{ds.path}' has no text column among "
                        f"{data.column_names}; set dataset.column")
    return [Prompt(f"{ds.path}-{i}", "hf", str(t)) for i, t in enumerate(data[column])
            if str(t).strip()]
