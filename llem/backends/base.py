"""The backend interface: construct (load), generate, close. Nothing else.

Warmup, energy, statistics and result rows belong to the harness, written once; a backend
only turns prompts into timed completions through its library's own API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True)
class LoadSpec:
    """What a backend needs to load a model: everything in a job's load key."""

    model: str
    dtype: str  # float32 | float16 | bfloat16 | auto
    engine: dict[str, Any] = field(default_factory=dict)  # passed to the library untouched
    gpus: int = 0
    seed: int = 0


@dataclass(frozen=True)
class GenerateSpec:
    """Per-call generation settings, mapped by each backend to its native parameters."""

    max_new_tokens: int
    min_new_tokens: int = 0
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = disabled
    repetition_penalty: float = 1.0
    seed: int = 0
    streaming: bool = False
    max_input_tokens: int | None = None  # truncate prompts to this many tokens (left kept)
    input_policy: str = "truncate"  # "pad": also extend shorter prompts to max_input_tokens
    extra: dict[str, Any] = field(default_factory=dict)  # backend-native generate kwargs


@dataclass
class RequestRecord:
    """One request's measured facts. Times are time.perf_counter() seconds in the worker.

    token_times_s holds the arrival time of every generated token when the backend truly
    observed them (streaming); it is None otherwise, never filled in by estimation.
    """

    input_tokens: int
    output_tokens: int
    start_s: float
    end_s: float
    token_times_s: list[float] | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # library's own request metrics
    text: str | None = None


class Backend(Protocol):
    """A loaded model. Constructed with a LoadSpec; one instance serves many jobs.

    reloads_in_process: close() frees the model's memory reliably, so one worker process
    may serve the next load group (close, then construct the next model) instead of a fresh
    process per group (llem.scheduler.pool, scheduling.reuse_workers). False where the library
    keeps GPU memory or global state past close (vLLM, TensorRT-LLM): those get a fresh process.
    """

    reloads_in_process: ClassVar[bool]

    def __init__(self, spec: LoadSpec) -> None: ...

    def generate(self, prompts: list[str], spec: GenerateSpec) -> list[RequestRecord]:
        """Run one batch of prompts; return one record per prompt, in order."""
        ...

    def close(self) -> None: ...
