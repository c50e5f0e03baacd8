"""Grid text for config tests: a minimal head (one tiny model, the noop backend), the grid
loaded from head + body as a file named grid.yaml, and the one-line error it is refused with."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem.config.load import load_text
from llem.config.loaded import Loaded
from llem.errors import ConfigError

HEAD = "name: t\nmodels: [llem:tiny]\nbackends: [noop]\n"


def load(body: str, head: str = HEAD, base_dir: Path | None = None) -> Loaded:
    return load_text(head + body, "grid.yaml", base_dir=base_dir)


def error_of(body: str, head: str = HEAD) -> str:
    with pytest.raises(ConfigError) as exc:
        load(body, head)
    return str(exc.value)
