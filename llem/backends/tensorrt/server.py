"""TensorRT-LLM's `trtllm-serve` as server mode starts it (written against its 1.x CLI).

NEVER RUN: tensorrt-llm cannot be installed on the machines llem was written on (its wheel
comes from NVIDIA's index). The command follows trtllm-serve's documented CLI and its source
(tensorrt_llm/commands/serve.py: the click command `serve`, console script
`trtllm-serve = tensorrt_llm.commands.serve:main`):

    PYTHON -c "from tensorrt_llm.commands.serve import main; main(...)" MODEL
        --host H --port P --backend pytorch --extra_llm_api_options WORKDIR/trtllm-serve-P.yml

that is `trtllm-serve MODEL --host H --port P --backend pytorch --extra_llm_api_options F`,
run by the environment's own python (the console script may not sit beside it, e.g. in
NVIDIA's containers). MODEL comes first, so the same argv works whether `main` is the serve
command itself or the group that defaults to it.

One mapping: trtllm-serve has no --dtype, and its flags cover a few LLM arguments only, but
its --extra_llm_api_options YAML overrides any LLM(...) argument. So every engine arg (the
same LLM(...) keys the offline backend takes) goes into that file, with dtype from the grid
and tensor_parallel_size = the job's GPUs as defaults, written as JSON (a subset of YAML).
`backend` picks --backend (pytorch by default; tensorrt builds an engine); `build` becomes
build_config, which only the tensorrt backend uses. host and port are the launcher's.
"""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any

from llem.backends import ServerCommand

HEALTH_PATH = "/health"
ENTRY = "from tensorrt_llm.commands.serve import main; main(prog_name='trtllm-serve')"
BACKENDS = ("pytorch", "tensorrt", "_autodeploy")
LAUNCHER_KEYS = frozenset({"host", "port"})


def llm_options(engine: dict[str, Any], *, dtype: str, gpus: int) -> tuple[str, dict[str, Any]]:
    """(trtllm-serve --backend, the LLM(...) options written to the extra options file)."""
    engine = dict(engine)
    backend = str(engine.pop("backend", "pytorch"))
    if backend == "trt":
        backend = "tensorrt"
    if backend not in BACKENDS:
        raise ValueError(f"trtllm-serve --backend is one of {', '.join(BACKENDS)} (got "
                         f"{backend!r})")
    taken = sorted(LAUNCHER_KEYS & set(engine))
    if taken:
        raise ValueError(f"tensorrt server: '{taken[0]}' is set by the launcher")
    engine.pop("model", None)  # the load key's model is the model
    build = engine.pop("build", None)
    if build:
        if backend != "tensorrt":
            raise ValueError("tensorrt server: `build` settings shape a TensorRT engine; the "
                             f"{backend} backend builds none (set backend: tensorrt)")
        engine["build_config"] = dict(build)
    options: dict[str, Any] = {"dtype": dtype}
    if gpus > 0:
        options["tensor_parallel_size"] = gpus
    options.update(engine)
    return backend, options


def command(model: str, *, dtype: str, engine: dict[str, Any], port: int, host: str,
            python: str, gpus: int = 0, workdir: str = ".") -> ServerCommand:
    """The server's command line and its options file (in workdir, named by the port, so
    servers on one node at once do not share one); pure: the launcher writes the file."""
    backend, options = llm_options(engine, dtype=dtype, gpus=gpus)
    path = str(PurePath(workdir) / f"trtllm-serve-{port}.yml")
    argv = [python, "-c", ENTRY, model, "--host", host, "--port", str(port),
            "--backend", backend, "--extra_llm_api_options", path]
    return ServerCommand(argv, HEALTH_PATH, model,
                         files={path: json.dumps(options, indent=1, sort_keys=True) + "\n"})
