"""Backends: the interface (base: construct, generate, close) and the lazy registry below,
where names map to "module:Class" strings.

The driver lists and validates backends without importing torch, vllm or tensorrt_llm;
only the worker, inside the backend's own environment, imports the class.

Adding a backend `foo`:
  1. llem/backends/foo/backend.py: a class with the three verbs of base.Backend, talking to
     its library the way the library's own docs and benchmarks do; import the library
     inside methods only (ruff's TID253 keeps it off module level).
  2. Optional llem/backends/foo/options.py (no library import): check_options, PATH_KEYS,
     quantization, gpu_fraction (see BackendInfo.options), and server.py for server mode.
  3. A BackendInfo entry in REGISTRY: the GenerateSpec fields it honours, whether it streams,
     its distribution name, its options module. The grid's `foo:` section (engine args,
     passed untouched) exists from then on.
  4. jobs/foo/: env.yaml and requirements files of its Python environment (llem.envs).
  5. Tests in tests/unit/backends/ through the real library, on the tiny model.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from types import ModuleType

from llem.backends.base import Backend, GenerateSpec, LoadSpec, RequestRecord

__all__ = [
    "DEFAULT_BACKEND",
    "REGISTRY",
    "Backend",
    "BackendInfo",
    "GenerateSpec",
    "LoadSpec",
    "RequestRecord",
    "ServerCommand",
    "get_info",
    "load_class",
    "options_of",
    "reloads_in_process",
    "server_of",
]

# Generation parameters every backend maps to its native API (GenerateSpec fields).
_COMMON = frozenset({"max_new_tokens", "temperature", "top_p", "top_k", "seed", "preset"})


@dataclass(frozen=True)
class BackendInfo:
    """What the driver knows about a backend without importing it."""

    name: str
    target: str  # "module:Class"
    supports: frozenset[str]  # GenerateSpec fields this backend honours
    streaming: bool  # can it observe true per-token arrival times
    needs_model: bool = True
    package: str | None = None  # the distribution whose version each row records
    # a light module (no library import) with the backend's own rules, each optional:
    # check_options(engine, *, gpus, batch_size, streaming) -> (key, why) | None,
    # PATH_KEYS (engine keys holding local paths), quantization(engine) -> str | None,
    # gpu_fraction(engine) -> float (the share of each GPU's memory it may take)
    options: str | None = None
    # server mode: a light module (no library import). A backend llem launches has
    # HEALTH_PATH and command(model, *, dtype, engine, port, host, python, gpus, workdir)
    # -> ServerCommand (llem.harness.server.launch runs it); one already running elsewhere
    # (endpoint) has settings(model, engine) -> its URL, served name and key's variable.
    server: str | None = None


@dataclass(frozen=True)
class ServerCommand:
    """One backend server's start, built by a pure function: what to run and how to ask it.

    files are written (path -> text) before the start: options a server only takes from a
    file. env is added to the worker's environment (which keeps CUDA_VISIBLE_DEVICES).
    """

    argv: list[str]
    health_path: str
    served_model: str  # the model name requests must carry
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


DEFAULT_BACKEND = "transformers"  # a grid without `backends:`

REGISTRY: dict[str, BackendInfo] = {
    info.name: info
    for info in (
        BackendInfo(
            "transformers",
            "llem.backends.transformers.backend:TransformersBackend",
            _COMMON | {"min_new_tokens", "repetition_penalty", "max_input_tokens",
                       "input_policy", "output_policy"},
            streaming=True, package="transformers",
            options="llem.backends.transformers.options",
            server="llem.backends.transformers.server",
        ),
        BackendInfo(
            "vllm",
            "llem.backends.vllm.backend:VllmBackend",
            _COMMON | {"min_new_tokens", "repetition_penalty", "max_input_tokens",
                       "output_policy"},
            streaming=True, package="vllm", options="llem.backends.vllm.options",
            server="llem.backends.vllm.server",
        ),
        BackendInfo(
            "tensorrt",
            "llem.backends.tensorrt.backend:TensorrtBackend",
            _COMMON | {"min_new_tokens", "repetition_penalty", "max_input_tokens",
                       "output_policy"},
            streaming=True, package="tensorrt_llm",
            server="llem.backends.tensorrt.server",
        ),
        BackendInfo(  # a server already running: the grid's `models:` entry is its name
            "endpoint",
            "llem.backends.endpoint.settings:EndpointBackend",
            frozenset({"max_new_tokens", "temperature", "top_p", "seed", "preset"}),
            streaming=True, options="llem.backends.endpoint.settings",
            server="llem.backends.endpoint.settings",
        ),
        BackendInfo(
            "noop",
            "llem.backends.noop:NoopBackend",
            _COMMON | {"min_new_tokens", "repetition_penalty", "max_input_tokens",
                       "input_policy", "output_policy"},
            streaming=True,
            needs_model=False,
        ),
    )
}


def get_info(name: str) -> BackendInfo:
    """The registry entry for name; an unknown name raises KeyError with a did-you-mean."""
    try:
        return REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(REGISTRY), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(sorted(REGISTRY))}"
        raise KeyError(f"unknown backend '{name}' ({hint})") from None


def options_of(name: str) -> ModuleType | None:
    """The backend's options module (BackendInfo.options), or None; imports no library."""
    target = get_info(name).options
    return importlib.import_module(target) if target else None


def server_of(name: str) -> ModuleType | None:
    """The backend's server-mode module (BackendInfo.server), or None; imports no library."""
    target = get_info(name).server
    return importlib.import_module(target) if target else None


def load_class(name: str) -> type[Backend]:
    """Import the backend's class; called only in the worker process."""
    module, _, cls = get_info(name).target.partition(":")
    backend: type[Backend] = getattr(importlib.import_module(module), cls)
    return backend


def reloads_in_process(name: str) -> bool:
    """Whether one worker process may serve several load groups of this backend in turn
    (Backend.reloads_in_process). Imports the backend's module, never its library."""
    return bool(getattr(load_class(name), "reloads_in_process", False))
