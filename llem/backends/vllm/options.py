"""What llem needs to know of vLLM's engine arguments without importing vLLM."""

from __future__ import annotations

from typing import Any

# vLLM's own default of gpu_memory_utilization (EngineArgs)
GPU_MEMORY_UTILIZATION = 0.9


def gpu_fraction(engine: dict[str, Any]) -> float:
    """The share of each GPU vLLM takes: it preallocates gpu_memory_utilization of it."""
    return float(engine.get("gpu_memory_utilization", GPU_MEMORY_UTILIZATION))
