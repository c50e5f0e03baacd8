"""TensorRT-LLM through its LLM API with the TensorRT engine backend (written against 1.2).

NEVER RUN: tensorrt-llm cannot be installed on the machines llem was written on (its wheel
comes from NVIDIA's index). The parameter mapping and the engine cache key are plain
functions, tested without the library; the calls into tensorrt_llm follow its own examples
(examples/llm-api/llm_inference_async_streaming.py) and source (_tensorrt_engine/llm.py).

Engine args: `build` (a map) becomes BuildConfig(**build); every other key goes to LLM(...)
untouched. A built engine is saved under the llem cache, keyed by a hash of (model, engine
args that shape the engine, GPU architecture, tensorrt_llm version), and loaded from there
by every later group with the same key, so a grid builds each engine once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llem.backends.base import GenerateSpec, LoadSpec, RequestRecord
from llem.paths import cache_root

# LLM(...) arguments that only configure the executor at run time (what _TrtLLM._build_model
# puts into ExecutorConfig, not into the engine): they do not change which engine is built.
RUNTIME_ONLY = frozenset({
    "kv_cache_config", "scheduler_config", "batching_type", "enable_chunked_prefill",
    "normalize_log_probs", "extended_runtime_perf_knob_config", "cache_transceiver_config",
    "peft_cache_config", "num_postprocess_workers", "postprocess_tokenizer_dir",
    "guided_decoding_backend", "gather_generation_logits",
})
ENGINE_MARKER = "llem-engine.json"


def model_identity(model: str) -> dict[str, Any]:
    """What identifies a model's weights: a hub id as is; a local folder by its config and
    the names, sizes and modification times of its weight files (not their bytes: GBs)."""
    p = Path(model)
    if not p.is_dir():
        return {"model": model}
    files = sorted(f for f in p.iterdir() if f.suffix in (".safetensors", ".bin", ".pt"))
    config = p / "config.json"
    return {"model": str(p.resolve()),
            "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest()
            if config.exists() else None,
            "weights": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]}


def split_engine_args(spec: LoadSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """LoadSpec -> (BuildConfig kwargs, LLM kwargs). engine args win over our defaults."""
    engine = dict(spec.engine)
    build = dict(engine.pop("build", None) or {})
    llm: dict[str, Any] = {"dtype": spec.dtype}
    if spec.gpus > 0:
        llm["tensor_parallel_size"] = spec.gpus
    llm.update(engine)
    llm.pop("model", None)  # the load key's model is the model
    return build, llm


def engine_key(spec: LoadSpec, gpu_arch: str, library_version: str) -> str:
    """Hash of what a built engine depends on; runtime-only LLM args are left out."""
    build, llm = split_engine_args(spec)
    material = {"model": model_identity(spec.model), "build": build,
                "llm": {k: v for k, v in llm.items() if k not in RUNTIME_ONLY},
                "gpu_arch": gpu_arch, "tensorrt_llm": library_version}
    text = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sampling_kwargs(spec: GenerateSpec) -> dict[str, Any]:
    """GenerateSpec -> tensorrt_llm.SamplingParams kwargs; spec.extra passes through and wins.

    temperature 0 is greedy, written as top_k=1 with top_p unset: what SamplingParams itself
    treats as greedy (its _greedy_decoding). TensorRT-LLM's None/0 top_k means "all logits",
    so llem's top_k 0 ("disabled") is left to that default. min_new_tokens 0 is left unset
    (the runtime's default, 1).
    """
    kw: dict[str, Any] = {"max_tokens": spec.max_new_tokens, "seed": spec.seed,
                          "repetition_penalty": spec.repetition_penalty}
    if spec.min_new_tokens > 0:
        kw["min_tokens"] = spec.min_new_tokens
    if spec.temperature == 0:
        kw["top_k"] = 1
    else:
        kw.update(temperature=spec.temperature, top_p=spec.top_p)
        if spec.top_k > 0:
            kw["top_k"] = spec.top_k
    kw["return_perf_metrics"] = True  # the runtime's own per-request timing (perf_durations)
    kw.update(spec.extra)
    return kw


def perf_durations(completion: Any) -> dict[str, float]:
    """TensorRT-LLM's RequestPerfMetrics.timing_metrics as durations in seconds.

    Same intervals as the vLLM backend's: queue (arrival -> first scheduled), prefill
    (-> first token), decode (-> last token). A stamp the runtime did not fill (None or 0)
    leaves its durations out, so their columns stay null.
    """
    timing = getattr(getattr(completion, "request_perf_metrics", None), "timing_metrics", None)
    if timing is None:
        return {}

    def seconds(name: str) -> float:
        v: Any = getattr(timing, name, None)
        if hasattr(v, "total_seconds"):  # a datetime.timedelta
            v = v.total_seconds()
        return float(v) if v else 0.0

    ts = {k: seconds(f"{k}_time") for k in ("arrival", "first_scheduled", "first_token",
                                              "last_token")}
    spans = {"queue_s": ("arrival", "first_scheduled"),
             "prefill_s": ("first_scheduled", "first_token"),
             "decode_s": ("first_token", "last_token")}
    return {name: ts[b] - ts[a] for name, (a, b) in spans.items() if ts[a] > 0 and ts[b] > 0}


def engine_cache_root() -> Path:
    return cache_root() / "trt-engines"


def publish_engine(engine_dir: Path, save: Callable[[Path], None],
                   marker: dict[str, Any]) -> bool:
    """Save an engine into a temp folder beside engine_dir, mark it, then rename it in.

    A crash mid-save leaves only a dot-folder, never a folder that looks cached; when two
    workers build the same engine, the first rename wins and the other copy is dropped.
    Returns whether this call's copy became the cached one.
    """
    engine_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_dir.with_name(f".{engine_dir.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    save(tmp)
    (tmp / ENGINE_MARKER).write_text(json.dumps(marker, default=str))
    try:
        if engine_dir.exists():
            raise FileExistsError(engine_dir)
        os.replace(tmp, engine_dir)
    except OSError:  # another worker finished the same engine first
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    return True


class TensorrtBackend:
    """One tensorrt_llm LLM on a TensorRT engine, built once per engine key and cached."""
    reloads_in_process = False  # its executor may keep GPU memory: a fresh process per load

    def __init__(self, spec: LoadSpec) -> None:
        import tensorrt_llm
        import torch
        from tensorrt_llm import BuildConfig
        from tensorrt_llm._tensorrt_engine import LLM

        major, minor = torch.cuda.get_device_capability()
        arch = f"sm{major}{minor}:{torch.cuda.get_device_name()}"
        build, llm_kwargs = split_engine_args(spec)
        key = engine_key(spec, arch, tensorrt_llm.__version__)
        engine_dir = engine_cache_root() / key
        self.engine_dir, self.engine_cached = engine_dir, (engine_dir / ENGINE_MARKER).exists()
        if self.engine_cached:
            runtime = {k: v for k, v in llm_kwargs.items() if k in RUNTIME_ONLY}
            self.llm: Any = LLM(model=str(engine_dir), tokenizer=spec.model, **runtime)
        else:
            self.llm = LLM(model=spec.model, build_config=BuildConfig(**build), **llm_kwargs)
            publish_engine(engine_dir, lambda tmp: self.llm.save(str(tmp)),
                           {"key": key, "model": spec.model, "build": build, "gpu_arch": arch,
                            "tensorrt_llm": tensorrt_llm.__version__})

    def _params(self, spec: GenerateSpec) -> Any:
        from tensorrt_llm import SamplingParams

        return SamplingParams(**sampling_kwargs(spec))

    def _inputs(self, prompts: list[str], spec: GenerateSpec) -> list[Any]:
        """Prompts as text, or as their first max_input_tokens token ids (the library's
        truncate_prompt_tokens keeps the last ones, unlike the other backends)."""
        if spec.max_input_tokens is None:
            return list(prompts)
        tok = self.llm.tokenizer
        return [tok.encode(p)[: spec.max_input_tokens] for p in prompts]

    def generate(self, prompts: list[str], spec: GenerateSpec) -> list[RequestRecord]:
        if not prompts:
            return []
        if self.llm is None:
            raise RuntimeError("TensorrtBackend is closed")
        params, inputs = self._params(spec), self._inputs(prompts, spec)
        if spec.streaming:
            return asyncio.run(self._stream_all(inputs, params))
        start = time.perf_counter()
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        end = time.perf_counter()
        return [RequestRecord(input_tokens=len(o.prompt_token_ids or []),
                              output_tokens=len(o.outputs[0].token_ids), start_s=start,
                              end_s=end, text=o.outputs[0].text,
                              metrics=perf_durations(o.outputs[0])) for o in outputs]

    async def _stream_all(self, inputs: list[Any], params: Any) -> list[RequestRecord]:
        return list(await asyncio.gather(*(self._stream_one(i, params) for i in inputs)))

    async def _stream_one(self, prompt: Any, params: Any) -> RequestRecord:
        """Each streamed output carries the request's tokens so far: new ones are stamped
        with the time their output arrived."""
        start = time.perf_counter()
        stamps: list[float] = []
        last: Any = None
        async for out in self.llm.generate_async(prompt, params, streaming=True):
            now = time.perf_counter()
            n = len(out.outputs[0].token_ids)
            stamps.extend([now] * (n - len(stamps)))
            last = out
        if last is None:
            raise RuntimeError("tensorrt_llm streamed no output")
        return RequestRecord(input_tokens=len(last.prompt_token_ids or []),
                             output_tokens=len(stamps), start_s=start,
                             end_s=stamps[-1] if stamps else time.perf_counter(),
                             token_times_s=stamps, text=last.outputs[0].text,
                             metrics=perf_durations(last.outputs[0]))

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None:
            llm.shutdown()
