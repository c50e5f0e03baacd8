"""Model options of the transformers backend, written in a grid's `transformers:` section:

    quantization: {load_in_4bit: true, bnb_4bit_compute_dtype: bfloat16}  # or 4bit / 8bit
    torch_compile: true                  # or a map of torch.compile kwargs {mode: ...}
    attn_implementation: sdpa            # from_pretrained's own argument, passed untouched
    adapter: ./my-lora                   # a LoRA (PEFT) adapter: model.load_adapter(...)
    assistant_model: org/small-draft     # assisted (speculative) generation

Every other key goes to from_pretrained untouched. check_options holds transformers' own
rules (the ones it would raise on mid-run) so a rejected combination is a validation error
before anything starts; it imports neither torch nor transformers. apply_options runs in the
worker and returns the facts recorded with each result.
"""

from __future__ import annotations

import importlib.util
from typing import Any

# engine keys that name local folders: resolved against the grid file's folder (llem.config)
PATH_KEYS = ("adapter", "assistant_model")
OPTION_KEYS = ("quantization", "torch_compile", "adapter", "assistant_model")
# BitsAndBytesConfig's parameters (transformers 4.4x-5.x).
BNB_KEYS = ("load_in_8bit", "load_in_4bit", "llm_int8_threshold", "llm_int8_skip_modules",
            "llm_int8_enable_fp32_cpu_offload", "llm_int8_has_fp16_weight",
            "bnb_4bit_compute_dtype", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant",
            "bnb_4bit_quant_storage")
COMPILE_KEYS = ("fullgraph", "dynamic", "backend", "mode", "options", "disable")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
SHORTHAND = {"4bit": {"load_in_4bit": True}, "8bit": {"load_in_8bit": True}}


def installed(package: str) -> bool:
    """Is package importable here (the environment the transformers worker runs in)?"""
    return importlib.util.find_spec(package) is not None


def bnb_config(value: Any) -> dict[str, Any]:
    """quantization as BitsAndBytesConfig kwargs (shorthand 4bit/8bit expanded)."""
    if isinstance(value, str) and value in SHORTHAND:
        return dict(SHORTHAND[value])
    if isinstance(value, dict):
        return dict(value)
    raise ValueError(f"must be 4bit, 8bit or a map of BitsAndBytesConfig settings (got {value!r})")


def quantization(engine: dict[str, Any]) -> str | None:
    """The weights' quantization for the memory estimate: bnb-4bit, bnb-8bit or None."""
    if engine.get("quantization") is None:
        return None
    return "bnb-4bit" if bnb_config(engine["quantization"]).get("load_in_4bit") else "bnb-8bit"


def check_options(engine: dict[str, Any], *, gpus: int, batch_size: int,
                  streaming: bool) -> tuple[str, str] | None:
    """(key, why) for the first option transformers would reject in this job, else None."""
    q = engine.get("quantization")
    if q is not None:
        try:
            cfg = bnb_config(q)
        except ValueError as exc:
            return "quantization", str(exc)
        unknown = [k for k in cfg if k not in BNB_KEYS]
        if unknown:
            return "quantization", (f"unknown BitsAndBytesConfig setting '{unknown[0]}'; known: "
                                    f"{', '.join(BNB_KEYS)}")
        if cfg.get("load_in_4bit") and cfg.get("load_in_8bit"):
            return "quantization", "load_in_4bit and load_in_8bit cannot both be true"
        if not (cfg.get("load_in_4bit") or cfg.get("load_in_8bit")):
            return "quantization", "set load_in_4bit: true or load_in_8bit: true"
        if gpus < 1:
            return "quantization", ("bitsandbytes 4/8-bit quantization needs a GPU (set "
                                    "resources.gpus_per_job: 1)")
        if not installed("bitsandbytes"):
            return "quantization", "needs the bitsandbytes package: pip install bitsandbytes"
    tc = engine.get("torch_compile")
    if tc is not None and not isinstance(tc, bool):
        if not isinstance(tc, dict):
            return "torch_compile", f"must be true/false or a map of torch.compile settings " \
                                    f"(got {tc!r})"
        unknown = [k for k in tc if k not in COMPILE_KEYS]
        if unknown:
            return "torch_compile", (f"unknown torch.compile setting '{unknown[0]}'; known: "
                                     f"{', '.join(COMPILE_KEYS)}")
        if tc.get("mode") is not None and tc["mode"] not in COMPILE_MODES:
            return "torch_compile", (f"unknown mode {tc['mode']!r}; use one of "
                                     f"{', '.join(COMPILE_MODES)}")
    attn = engine.get("attn_implementation")
    if isinstance(attn, str) and attn.startswith("flash_attention"):
        if gpus < 1:
            return "attn_implementation", f"{attn} needs a GPU (set resources.gpus_per_job: 1)"
        if not installed("flash_attn") and not installed("kernels"):
            return "attn_implementation", f"{attn} needs the flash-attn package: pip install " \
                                          "flash-attn"
    if engine.get("adapter") is not None:
        if not isinstance(engine["adapter"], str) or not engine["adapter"].strip():
            return "adapter", "must be a path or hub id of a LoRA (PEFT) adapter"
        if not installed("peft"):
            return "adapter", "LoRA adapters need the peft package: pip install 'peft>=0.21'"
    if engine.get("assistant_model") is not None:
        if not isinstance(engine["assistant_model"], str):
            return "assistant_model", "must be a model id or path"
        if batch_size > 1:
            return "assistant_model", (f"transformers runs assisted generation only with "
                                       f"batch_size 1 (this job has {batch_size})")
        if streaming:
            return "assistant_model", ("assisted generation accepts several tokens per step, "
                                       "so per-token times cannot be observed (set streaming: "
                                       "false)")
    return None


def split_engine(engine: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(from_pretrained kwargs, llem's options) out of a transformers engine section."""
    opts = {k: v for k, v in engine.items() if k in OPTION_KEYS}
    return {k: v for k, v in engine.items() if k not in OPTION_KEYS}, opts


def from_pretrained_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    """What the options add to from_pretrained (a BitsAndBytesConfig object)."""
    if opts.get("quantization") is None:
        return {}
    from transformers import BitsAndBytesConfig

    return {"quantization_config": BitsAndBytesConfig(**bnb_config(opts["quantization"]))}


def apply_options(model: Any, opts: dict[str, Any], load_assistant: Any) -> tuple[Any, Any,
                                                                                   dict[str, Any]]:
    """Adapter, compile and assistant on a loaded model. Returns (model, assistant or None,
    facts recorded with each result: what the library actually did)."""
    if opts.get("adapter"):
        model.load_adapter(opts["adapter"])  # transformers' PEFT integration
    assistant = load_assistant(opts["assistant_model"]) if opts.get("assistant_model") else None
    compiled = bool(opts.get("torch_compile"))
    if compiled:
        import torch

        kw = opts["torch_compile"] if isinstance(opts["torch_compile"], dict) else {}
        model.forward = torch.compile(model.forward, **kw)
    q = opts.get("quantization")
    quant = None
    if q is not None:
        cfg = bnb_config(q)
        quant = "bnb-4bit" if cfg.get("load_in_4bit") else "bnb-8bit"
    facts = {
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "quantization": quant if getattr(model, "hf_quantizer", None) is not None else None,
        "compiled": compiled,
        "adapter": opts.get("adapter") if getattr(model, "_hf_peft_config_loaded", False)
        else None,
        "assistant_model": opts.get("assistant_model") if assistant is not None else None,
    }
    return model, assistant, facts
