"""Model options of the transformers backend, written in a grid's `transformers:` section:

    quantization: {load_in_4bit: true, bnb_4bit_compute_dtype: bfloat16}  # or 4bit / 8bit
    torch_compile: true                  # or a map of torch.compile kwargs {mode: ...}
    attn_implementation: sdpa            # from_pretrained's own argument, passed untouched
    adapter: ./my-lora                   # a LoRA (PEFT) adapter: model.load_adapter(...)
    assistant_model: org/small-draft     # assisted (speculative) generation

Every other key goes to from_pretrained untouched: it must be one of its arguments or a
config setting (FROM_PRETRAINED, CONFIG_KEYS; `transformers serve` options in server mode).
check_keys refuses the others, and the keys that belong elsewhere (batch_size, load_in_4bit,
sampling parameters, a duplicate of llem's dtype), naming the right place; check_options
holds transformers' own rules (the ones it would raise on mid-run) so a rejected combination
is a validation error before anything starts. Neither imports torch nor transformers.
apply_options runs in the worker and returns the facts recorded with each result.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import re
from typing import Any

from llem.backends.transformers.generate_values import value_problem

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
# from_pretrained's attn_implementation values (transformers 5.x: "eager" and the keys of
# ALL_ATTENTION_FUNCTIONS); hub kernels are matched by HUB_KERNEL
ATTENTION = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flash_attention_4",
             "flex_attention", "paged|eager")
HOST_DEVICES = ("cpu", "disk", "meta")  # device_map values that are no GPU
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential", "cpu", "cuda",
                         "disk", "meta")
HUB_KERNEL = re.compile(r"[^/:]+/[^/:]+(?:@[^/:]+)?(?::[^/:]+)?")
SHORTHAND = {"4bit": {"load_in_4bit": True}, "8bit": {"load_in_8bit": True}}
# PreTrainedModel.from_pretrained's own arguments (transformers 5.x: its signature and the
# keys it pops from **kwargs), less what llem sets itself (dtype) or never passes
FROM_PRETRAINED = frozenset({
    "cache_dir", "config", "disable_mmap", "force_download", "fusion_config",
    "ignore_mismatched_sizes", "local_files_only", "revision", "use_safetensors",
    "weights_only", "adapter_kwargs", "adapter_name", "allow_all_kernels",
    "attn_implementation", "device_map", "device_mesh", "distributed_config",
    "experts_implementation", "generation_config", "gguf_file", "kernel_config",
    "kernels_mode", "key_mapping", "max_memory", "offload_buffers", "offload_folder",
    "output_loading_info", "proxies", "quantization_config", "subfolder", "tp_plan",
    "tp_size", "trust_remote_code", "use_kernels", "variant", "low_cpu_mem_usage"})
# config settings from_pretrained passes on to the model's config (PretrainedConfig's and
# the common ones of causal LMs)
CONFIG_KEYS = frozenset({
    "output_attentions", "output_hidden_states", "return_dict", "use_cache",
    "tie_word_embeddings", "torchscript", "pad_token_id", "bos_token_id", "eos_token_id",
    "max_position_embeddings", "rope_scaling", "rope_theta", "rope_parameters",
    "sliding_window", "use_sliding_window", "attention_dropout", "num_hidden_layers",
    "chunk_size_feed_forward", "problem_type", "layer_types", "max_window_layers"})
# `transformers serve` options (llem.backends.transformers.server.SERVE_OPTIONS; a test
# keeps the two equal)
SERVE_OPTIONS = frozenset({
    "continuous_batching", "attn_implementation", "compile", "quantization", "reasoning",
    "chat_template_kwargs", "decision_config", "device", "dtype", "trust_remote_code",
    "model_timeout", "max_model_len", "cb_block_size", "cb_num_blocks", "cb_max_batch_tokens",
    "cb_max_memory_percent", "cb_use_cuda_graph", "enable_cors", "log_level",
    "enable_log_requests", "default_seed", "api_server_count"})
# GenerationConfig's settings (transformers 5.x), the generate: keys transformers takes
GENERATE_KEYS = frozenset({
    "assistant_confidence_threshold", "assistant_early_exit", "assistant_lookbehind",
    "bad_words_ids", "begin_suppress_tokens", "bos_token_id", "cache_config",
    "cache_implementation", "compile_config", "constraints", "decoder_start_token_id",
    "disable_compile", "diversity_penalty", "dola_layers", "early_stopping",
    "encoder_no_repeat_ngram_size", "encoder_repetition_penalty", "eos_token_id",
    "epsilon_cutoff", "eta_cutoff", "exponential_decay_length_penalty", "force_words_ids",
    "forced_bos_token_id", "forced_eos_token_id", "guidance_scale", "length_penalty",
    "low_memory", "max_cache_len", "max_length", "max_matching_ngram_size", "max_time",
    "min_length", "min_p", "no_repeat_ngram_size", "num_assistant_tokens",
    "num_assistant_tokens_schedule", "num_beam_groups", "num_beams", "output_attentions",
    "output_hidden_states", "output_logits", "output_scores", "pad_token_id", "penalty_alpha",
    "prefill_chunk_size", "prompt_lookup_num_tokens", "remove_invalid_values",
    "renormalize_logits", "return_dict_in_generate", "sequence_bias", "stop_strings",
    "suppress_tokens", "target_lookbehind", "token_healing", "top_h", "typical_p",
    "use_cache", "watermarking_config"})
# generate settings llem sets from its own fields
LLEM_GENERATE = {"max_new_tokens": "max_new_tokens", "min_new_tokens": "min_new_tokens",
                 "temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                 "repetition_penalty": "repetition_penalty", "do_sample": "temperature",
                 "num_return_sequences": None, "max_tokens": "max_new_tokens"}
# other libraries' sampling parameters, which transformers' generate does not take
OTHER_SAMPLING = frozenset({"presence_penalty", "frequency_penalty", "min_tokens", "stop",
                            "ignore_eos", "logprobs", "best_of", "use_beam_search", "n"})
BATCH = "llem's batch_size: grid: {batch_size: 8} (per backend: per_backend: " \
        "{transformers: {batch_size: 8}})"


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


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else "..."


def check_keys(section: str, keys: dict[str, Any], *, environment: dict[str, Any],
               modes: set[str]) -> tuple[list[tuple[str, str, str | None]], str | None]:
    """(key, why, hint) for each key of the grid's `transformers:` section (section
    "engine") or of generate: (section "generate") that transformers would reject (keys:
    each key and a value it was given), and a note for what was not checked. Checked
    against what transformers 5 accepts (no environment is needed)."""
    problems = []
    for key, value in keys.items():
        found = _engine_key(key, value, modes) if section == "engine" else \
            _generate_key(key, value, checked=modes != {"server"})
        if found:
            problems.append((key, *found))
    note = "transformers generate keys in server mode: they go to the server's requests" \
        if section == "generate" and modes == {"server"} else None
    return problems, note


def _engine_key(key: str, value: Any, modes: set[str]) -> tuple[str, str | None] | None:
    if key in ("dtype", "torch_dtype"):
        return ("duplicates llem's own dtype (from_pretrained would get this one while the "
                "result records llem's)", f"write llem's dtype: {_shown(value)} (per backend: "
                f"per_backend: {{transformers: {{dtype: {_shown(value)}}}}})")
    if key in ("batch_size", "per_device_batch_size", "batching"):
        return "not a from_pretrained argument: batching is llem's", f"write {BATCH}"
    if key in ("load_in_4bit", "load_in_8bit"):
        bits = key[len("load_in_"):]
        return ("not a from_pretrained argument in transformers 5 (bitsandbytes settings "
                "go in a quantization config)", f"write transformers: {{quantization: {bits}}}")
    if key in BNB_KEYS:
        return ("a bitsandbytes setting, not a from_pretrained argument",
                f"write transformers: {{quantization: {{{key}: {_shown(value)}, ...}}}}")
    if (key in LLEM_GENERATE or key in GENERATE_KEYS or key in OTHER_SAMPLING) and \
            key not in FROM_PRETRAINED | CONFIG_KEYS:
        mine = LLEM_GENERATE.get(key)
        return ("a generation setting, not a from_pretrained argument",
                f"write llem's {mine}: {_shown(value)}" if mine else
                f"write generate.{key}: {_shown(value)}")
    offline = set(OPTION_KEYS) | FROM_PRETRAINED | CONFIG_KEYS
    server = SERVE_OPTIONS | {"torch_compile", "quantization"}
    allowed = offline & server if modes >= {"offline", "server"} else \
        server if "server" in modes else offline
    if key in allowed:
        return None
    close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.7)
    what = "a `transformers serve` option" if modes == {"server"} else \
        "a from_pretrained argument of transformers 5 nor a config setting llem knows"
    if modes == {"offline", "server"}:
        what += " (offline and server points share this section)"
    return (f"not {what}", f"did you mean '{close[0]}'?" if close else
            "llem's options: " + ", ".join(OPTION_KEYS))


def _generate_key(key: str, value: Any, checked: bool) -> tuple[str, str | None] | None:
    if key == "do_sample":
        return ("set by llem: it samples when temperature > 0",
                "write llem's temperature: 0 for greedy decoding, or preset: deterministic")
    if key in LLEM_GENERATE:
        mine = LLEM_GENERATE[key]
        return (f"set by llem from {mine}" if mine else "set by llem",
                f"write llem's {mine}: {_shown(value)} (recorded with each result)" if mine
                else "remove it (llem takes one completion per prompt)")
    if key == "batch_size":
        return "not a generation setting", f"write {BATCH}"
    if key in OTHER_SAMPLING:
        return ("transformers' generate has no such setting (vLLM and TensorRT-LLM take it)",
                f"scope it to those: per_backend: {{vllm: {{generate.{key}: {_shown(value)}}}}}")
    if key in GENERATE_KEYS or not checked:
        return None
    close = difflib.get_close_matches(key, sorted(GENERATE_KEYS), n=1, cutoff=0.7)
    return ("not a generation setting of transformers 5 (GenerationConfig)",
            f"did you mean '{close[0]}'?" if close else None)


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
    if "device_map" in engine and (why := device_map_problem(engine["device_map"], gpus)):
        return "device_map", why
    attn = engine.get("attn_implementation")
    if attn is not None and (why := attention_problem(attn)):
        return "attn_implementation", why
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
        if not isinstance(engine["assistant_model"], str) or not engine["assistant_model"].strip():
            return "assistant_model", "must be a model id or path (a blank one ran no assistant)"
        if batch_size > 1:
            return "assistant_model", (f"transformers runs assisted generation only with "
                                       f"batch_size 1 (this job has {batch_size})")
        if streaming:
            return "assistant_model", ("assisted generation accepts several tokens per step, "
                                       "so per-token times cannot be observed (set streaming: "
                                       "false)")
    return None


def check_generate_value(key: str, value: Any) -> str | None:
    """Why transformers would refuse generate.key: value (read by llem.config.checks for
    every value of every axis), else None."""
    return value_problem(key, value)


def device_map_problem(value: Any, gpus: int) -> str | None:
    """Why from_pretrained (or CUDA, at model load) would refuse device_map on a job of gpus
    GPUs, else None. Ray gives each job its own GPUs, seen as cuda:0 .. cuda:gpus-1."""
    if isinstance(value, dict):
        if not value:
            return "an empty map places nothing: give {'': 'cuda'} or leave it out"
        return next((f"{k!r}: {why}" for k, v in value.items()
                     if (why := _device_problem(v, gpus))), None)
    if value in DEVICE_MAP_STRATEGIES:
        if gpus or value in HOST_DEVICES or value == "auto":
            return None
        return f"{value} places the model on GPUs and this job has none " \
            "(resources.gpus_per_job: 0)"
    return _device_problem(value, gpus)


def _device_problem(device: Any, gpus: int) -> str | None:
    if device in HOST_DEVICES:
        return None
    index = _gpu_index(device)
    if index is None:
        return (f"{device!r} is no device: use cuda:N, N, cpu or disk (or auto, balanced, "
                "sequential for the whole model)")
    if index >= gpus:
        return (f"{device!r} is past this job's GPUs ({gpus}: Ray gives each job its own, "
                f"numbered from 0){'' if gpus else ' (resources.gpus_per_job is 0)'}")
    return None


def _gpu_index(device: Any) -> int | None:
    """The GPU a device_map value names (N, cuda:N, cuda: 0), None when it names none."""
    if isinstance(device, int) and not isinstance(device, bool):
        return device
    if device == "cuda":
        return 0
    if isinstance(device, str) and device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    return None


def attention_problem(attn: Any) -> str | None:
    """Why from_pretrained would refuse attn_implementation at model load (after Ray has
    started), else None: one of ATTENTION, a hub kernel (`org/repo[@rev][:name]`, the
    pattern of transformers.integrations.hub_kernels.is_kernel), or a map of such per
    sub-config (`{text_config: sdpa, vision_config: eager}`)."""
    if isinstance(attn, dict):
        return next((f"{k}: {why}" for k, v in attn.items()
                     if (why := attention_problem(v))), None)
    if isinstance(attn, str) and (attn in ATTENTION or HUB_KERNEL.fullmatch(attn)):
        return None
    return (f"unknown attention implementation {attn!r}; use one of {', '.join(ATTENTION)}, "
            "or a hub kernel as org/repo")


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
