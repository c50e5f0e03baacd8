"""How big a random-weight test model may be, checked from its sizes before anything is built.

Building initialises every weight in float32 (4 bytes a parameter) before it is converted
and saved: sizes a user can type (--hidden-size 16384 --layers 128 ...) ask for terabytes,
which ended in an allocator's traceback after minutes. The count comes from the sizes
(llem.models.shape, the same count as a built model's), the memory from what this process
may still take: the machine's available memory, its cgroup's limit, `ulimit -v`.
"""

from __future__ import annotations

import resource
from pathlib import Path

from llem.models.shape import shape_of

MAX_PARAMS = 8_000_000_000  # llem:random-7b (Llama-2-7B's shape) is the largest test model
GPU_INIT_PARAMS = 1e9  # above this a visible GPU initialises the weights (llem.models.tiny)
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def params_of(*, vocab_size: int, hidden_size: int, num_layers: int, num_heads: int,
              intermediate_size: int) -> int:
    """The parameters of the Llama model these sizes build (vocabulary at its maximum)."""
    return shape_of({"model_type": "llama", "vocab_size": vocab_size,
                     "hidden_size": hidden_size, "num_hidden_layers": num_layers,
                     "num_attention_heads": num_heads, "num_key_value_heads": num_heads,
                     "intermediate_size": intermediate_size}).params()


def too_many(params: int) -> str | None:
    """Why params is more than a test model should have, if so."""
    if params <= MAX_PARAMS:
        return None
    return (f"these sizes make {billions(params)} parameters ({gib(params * 4)} to "
            f"initialise); a test model is at most {billions(MAX_PARAMS)} (llem:random-7b's "
            "shape): use smaller sizes, e.g. hidden size 2048, 16 layers, 16 heads, "
            "intermediate size 5632 (0.8B)")


def memory_problem(params: int, dtype: str, on_gpu: bool = False) -> str | None:
    """Why this process cannot hold the model while building it, if so: float32 weights on
    the host, or (weights initialised on a GPU) the saved dtype's copy."""
    need = params * (DTYPE_BYTES[dtype] if on_gpu else 4)
    have = host_memory()
    if have is None or need <= have:
        return None
    return (f"{billions(params)} parameters need about {gib(need)} of memory to build; this "
            f"process may use {gib(have)} (available memory, cgroup limit, ulimit -v): use "
            "smaller sizes, or build on a machine with more memory")


def host_memory() -> int | None:
    """Bytes this process may still allocate, the smallest of what limits it (None: unknown)."""
    limits = [_meminfo_available(), _cgroup_room(), _ulimit_room()]
    known = [n for n in limits if n is not None]
    return min(known) if known else None


def billions(params: int) -> str:
    return f"{params / 1e9:.1f}B" if params >= 1e8 else f"{params / 1e6:.1f}M"


def gib(n: int) -> str:
    return f"{n / 2**40:.1f} TiB" if n >= 2**40 else f"{n / 2**30:.1f} GiB"


def _meminfo_available() -> int | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _cgroup_room() -> int | None:
    """The cgroup's memory limit less its use (v2 memory.max, v1 memory.limit_in_bytes)."""
    for limit, used in (("memory.max", "memory.current"),
                        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        top, use = _read(f"/sys/fs/cgroup/{limit}").strip(), _read(f"/sys/fs/cgroup/{used}")
        if top.isdigit() and use.strip().isdigit() and int(top) < 2**60:
            return max(int(top) - int(use), 0)
    return None


def _ulimit_room() -> int | None:
    """`ulimit -v` (RLIMIT_AS) less the address space this process already maps."""
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft == resource.RLIM_INFINITY:
        return None
    size = next((int(ln.split()[1]) * 1024 for ln in _read("/proc/self/status").splitlines()
                 if ln.startswith("VmSize:")), 0)
    return max(soft - size, 0)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, ValueError):
        return ""
