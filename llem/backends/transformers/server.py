"""`transformers serve` as server mode starts it (options of transformers 5.25's CLI).

    PYTHON -m transformers.cli.transformers serve MODEL --host H --port P --dtype D
        --continuous-batching ENGINE FLAGS

The module the `transformers` console script runs, through the environment's own python.
MODEL is preloaded (serve's FORCE_MODEL), so the server is healthy only once it is loaded.
Its update check is turned off (HF_HUB_DISABLE_UPDATE_CHECK): GPU hosts may have no route
to PyPI. Serving needs fastapi, uvicorn and openai (llem's `transformers` extra).

One mapping for the grid's `transformers:` section:
  serve's own options (SERVE_OPTIONS)   --key-with-dashes VALUE; true/false -> --key /
                                        --no-key (typer makes both for every bool option);
                                        a dict -> JSON (chat_template_kwargs)
  torch_compile: true/false             --compile / --no-compile
  quantization: 4bit, 8bit or a map     --quantization bnb-4bit / bnb-8bit
    with only load_in_4bit/load_in_8bit
  attn_implementation, trust_remote_code, dtype   are serve options of the same name
Anything else (adapter, assistant_model, other from_pretrained kwargs, compile settings,
bitsandbytes settings) has no serve option: a ValueError names it, rather than a server
that silently runs another configuration than the grid says. continuous_batching defaults
to true (set it false for serve's one-request-at-a-time path).

Memory: continuous batching sizes its KV cache from free memory, on the CPU 60% of the
machine's RAM (transformers' resolve_max_memory_percent): one tiny-model server took 14 GB
of 23 here, and a second beside it was OOM-killed. Set cb_num_blocks or
cb_max_memory_percent when servers, or other work, share the memory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llem.backends import ServerCommand
from llem.backends.transformers.options import bnb_config

HEALTH_PATH = "/health"
MODULE = "transformers.cli.transformers"
# `transformers serve --help` (5.25), less what the launcher sets (host, port, the model)
SERVE_OPTIONS = frozenset({
    "continuous_batching", "attn_implementation", "compile", "quantization", "reasoning",
    "chat_template_kwargs", "decision_config", "device", "dtype", "trust_remote_code",
    "model_timeout", "max_model_len", "cb_block_size", "cb_num_blocks", "cb_max_batch_tokens",
    "cb_max_memory_percent", "cb_use_cuda_graph", "enable_cors", "log_level",
    "enable_log_requests", "default_seed", "api_server_count",
})
LAUNCHER_KEYS = frozenset({"host", "port", "force_model"})
ENV = {"HF_HUB_DISABLE_UPDATE_CHECK": "1"}


def _quantization(value: Any) -> str:
    cfg = bnb_config(value)
    if set(cfg) - {"load_in_4bit", "load_in_8bit"}:
        extra = sorted(set(cfg) - {"load_in_4bit", "load_in_8bit"})
        raise ValueError(f"transformers serve takes only --quantization bnb-4bit/bnb-8bit, "
                         f"not the bitsandbytes settings {extra}")
    return "bnb-4bit" if cfg.get("load_in_4bit") else "bnb-8bit"


def serve_options(engine: dict[str, Any]) -> dict[str, Any]:
    """The grid's transformers section as serve's own options (see the module docstring)."""
    out: dict[str, Any] = {"continuous_batching": True}
    for key, value in engine.items():
        if key in LAUNCHER_KEYS:
            raise ValueError(f"transformers server: '{key}' is set by the launcher")
        if key == "torch_compile":
            if not isinstance(value, bool):
                raise ValueError("transformers serve takes only --compile (torch_compile: "
                                 "true/false), not torch.compile settings")
            out["compile"] = value
        elif key == "quantization":
            if value is not None:
                out["quantization"] = _quantization(value)
        elif key in SERVE_OPTIONS:
            out[key] = value
        else:
            raise ValueError(f"transformers serve has no option for '{key}' (it takes: "
                             f"torch_compile, quantization, {', '.join(sorted(SERVE_OPTIONS))})")
    return out


def option_flags(options: dict[str, Any]) -> list[str]:
    flags: list[str] = []
    for key, value in options.items():
        if value is None:
            continue
        name = key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(f"--{name}" if value else f"--no-{name}")
        elif isinstance(value, dict):
            flags += [f"--{name}", json.dumps(value)]
        else:
            flags += [f"--{name}", str(value)]
    return flags


def hub_cache() -> Path:
    """The hub cache folder serve's /v1/models lists (huggingface_hub's own rule)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home).expanduser() / "hub"


def command(model: str, *, dtype: str, engine: dict[str, Any], port: int, host: str,
            python: str, gpus: int = 0, workdir: str = ".") -> ServerCommand:
    """The server's command line. gpus is left to serve's --device auto (the worker's
    CUDA_VISIBLE_DEVICES already limits what it sees). Creates the hub cache folder if it is
    missing: serve's /v1/models scans it and answers 500 without it (seen on a fresh GPU host
    serving a local model folder), so the server would never look ready."""
    hub_cache().mkdir(parents=True, exist_ok=True)
    options = {"dtype": dtype, **serve_options(engine)}
    argv = [python, "-m", MODULE, "serve", model, "--host", host, "--port", str(port)]
    return ServerCommand(argv + option_flags(options), HEALTH_PATH, model, env=dict(ENV))


def generation_body(*, min_tokens: int | None, ignore_eos: bool,
                    top_k: int | None) -> dict[str, Any]:
    """Request fields for what the OpenAI schema lacks: `transformers serve` takes them as
    `generation_config`, a JSON of generate() kwargs (its serving/utils.py); an unknown
    top-level field is refused with 422. A fixed output length is min_new_tokens (EOS may
    not stop it before)."""
    config: dict[str, Any] = {}
    if min_tokens:
        config["min_new_tokens"] = min_tokens
    if top_k:
        config["top_k"] = top_k
    return {"generation_config": json.dumps(config)} if config else {}
