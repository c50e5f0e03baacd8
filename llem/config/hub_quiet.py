"""The hub libraries (huggingface_hub, datasets) held to one line: each logs every retry of
a host it cannot reach on stderr ('Retrying in 8s', five times, 25 s offline) before the
error llem turns into its own one-line refusal."""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_hub(*libraries: str) -> Iterator[None]:
    """Within the block, the loggers of huggingface_hub and the libraries named keep errors
    only. Each library sets its logger's level when first imported, so they are imported
    here first."""
    # huggingface_hub imports its modules lazily: its logger is set when this one loads
    for module in ("huggingface_hub.utils.logging", *libraries):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    loggers = [logging.getLogger(name) for name in ("huggingface_hub", *libraries)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
