"""The noop backend: no model, known timings. For scheduler tests and benchmarks only.

It never stands in for a real backend in a test about measurement. Engine args:
  load_s            seconds to "load" (default 0)
  request_s         seconds per batch (default 0)
  token_s           seconds per generated token per batch, streamed (default 0)
Generate kwargs (grid `generate.*`), for fault tests:
  fail_env          raise RuntimeError quoting this environment variable's value (a library
                    that leaks a credential in its error message)
  fail              raise RuntimeError with this text
  exit              os._exit with this code: the worker process dies
  exit_once         a file path: the first call that finds it absent creates it, then dies
                    (os._exit(3)) mid-job: a crash that a retry survives
  exit_after_s      with exit or exit_once: die this many seconds into the call
  hang_s            sleep this long in the call (a hung backend, for the per-job timeout)
"""

from __future__ import annotations

import os
import time

from llem.backends.base import GenerateSpec, LoadSpec, RequestRecord


class NoopBackend:
    reloads_in_process = True  # nothing to free

    def __init__(self, spec: LoadSpec) -> None:
        self.engine = dict(spec.engine)
        time.sleep(float(self.engine.get("load_s", 0)))

    def generate(self, prompts: list[str], spec: GenerateSpec) -> list[RequestRecord]:
        extra = spec.extra
        if extra.get("fail_env"):
            raise RuntimeError(f"auth failed with {os.environ.get(str(extra['fail_env']))}")
        if extra.get("fail"):
            raise RuntimeError(f"noop backend asked to fail: {extra['fail']}")
        once = extra.get("exit_once")
        if extra.get("exit") or (once and _claim(str(once))):
            time.sleep(float(extra.get("exit_after_s", 0)))
            os._exit(int(extra.get("exit") or 3))
        time.sleep(float(extra.get("hang_s", 0)))
        start = time.perf_counter()
        token_s = float(self.engine.get("token_s", 0))
        times = None
        if spec.streaming:
            times = []
            for _ in range(spec.max_new_tokens):
                time.sleep(token_s)
                times.append(time.perf_counter())
        else:
            time.sleep(token_s * spec.max_new_tokens)
        time.sleep(float(self.engine.get("request_s", 0)))
        end = time.perf_counter()
        return [RequestRecord(input_tokens=_input_len(p, spec), output_tokens=spec.max_new_tokens,
                              start_s=start, end_s=end, token_times_s=times) for p in prompts]

    def close(self) -> None:
        pass


def _claim(path: str) -> bool:
    """Create path if absent (atomically); True for the one caller that created it."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _input_len(prompt: str, spec: GenerateSpec) -> int:
    """Words as tokens, cut (and, with input_policy pad, extended) to max_input_tokens."""
    n = len(prompt.split())
    if spec.max_input_tokens is None:
        return n
    return spec.max_input_tokens if spec.input_policy == "pad" else min(n, spec.max_input_tokens)
