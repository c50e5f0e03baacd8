"""The hub libraries' retry warnings are held back (llem.config.hub_quiet), in a fresh
process: huggingface_hub sets its logger's level when its lazily imported modules load, so
a level set before that would be undone."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import logging
from llem.config.hub_quiet import quiet_hub
with quiet_hub():
    from huggingface_hub import hf_hub_download  # loads the hub's modules, lazily
    logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 8s [Retry 5/5].")
    logging.getLogger("huggingface_hub.utils._http").error("an error still shows")
logging.getLogger("huggingface_hub.utils._http").warning("after the block: shown")
"""


def test_retries_are_not_printed_errors_are() -> None:
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       timeout=60, check=True)
    assert "Retrying" not in r.stderr, r.stderr
    assert "an error still shows" in r.stderr and "after the block: shown" in r.stderr
