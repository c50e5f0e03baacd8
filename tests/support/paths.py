"""Where things are: the checkout, the CLI command, the test data."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LLEM = [sys.executable, "-m", "llem"]
DATA = ROOT / "tests" / "support" / "data"
BAD_GRIDS = DATA / "bad_grids"
