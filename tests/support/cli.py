"""The CLI as a user runs it: a subprocess, an argument list, no shell."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.paths import LLEM, ROOT


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a subprocess, argument list, no shell."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    full_env.update(env or {})
    return subprocess.run([*LLEM, *args], cwd=cwd or ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env, check=False)


def assert_one_error_line(r: subprocess.CompletedProcess[str], want: str,
                          unseen: str = "") -> None:
    """Refused as a user should see it: exit 2, one `error:` line holding want, no traceback
    or internal error, and unseen (a planted secret) nowhere in the output."""
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr[-2000:]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr
    assert want in r.stderr, r.stderr
    assert not unseen or unseen not in r.stderr + r.stdout
