"""The names a user coming from LLenergyMeasure (or another tool) types, and what llem calls
each: a key llem does not know is answered with llem's name and how to write it, before any
spelling-distance guess (which would point `sweep` at `seed`). The README's "Coming from
LLenergyMeasure" table lists the same names.
"""

from __future__ import annotations

# old name -> how llem writes it
OLD_NAMES: dict[str, str] = {
    "sweep": "llem calls it 'grid': grid: {batch_size: [1, 8]} (lists are axes, crossed)",
    "study": "a grid file is one study: name:, models:, backends:, grid:",
    "study_name": "llem calls it 'name'",
    "config_name": "llem calls it 'name'",
    "experiment_name": "llem calls it 'name'",
    "experiment": "llem calls it 'experiments': a list of one-off points run besides the grid",
    "runs": "one-off points are 'experiments': [{backend: vllm, batch_size: 64}]",
    "precision": "llem calls it 'dtype': dtype: float16 (fp16, bf16, fp32 also accepted)",
    "fp_precision": "llem calls it 'dtype': dtype: float16 (fp16, bf16, fp32 also accepted)",
    "torch_dtype": "llem calls it 'dtype': dtype: bfloat16",
    "fp16": "write dtype: float16",
    "bf16": "write dtype: bfloat16",
    "fp32": "write dtype: float32",
    "float16": "write dtype: float16",
    "bfloat16": "write dtype: bfloat16",
    "backend": "llem calls it 'backends': backends: [transformers, vllm]",
    "engine": "llem calls it 'backends': backends: [vllm]; engine args go in a vllm: section",
    "inference_engine": "llem calls it 'backends': backends: [vllm]",
    "model": "llem calls it 'models': models: [org/name]",
    "model_name": "llem calls it 'models': models: [org/name]",
    "n_cycles": "llem calls it 'cycles': cycles: 3",
    "num_cycles": "llem calls it 'cycles': cycles: 3",
    "cycle": "llem calls it 'cycles': cycles: 3",
    "repeats": "llem calls it 'cycles': cycles: 3",
    "num_repeats": "llem calls it 'cycles': cycles: 3",
    "decoder": "llem calls it 'preset' (deterministic, standard, creative, factual) with the "
               "fields temperature, top_p, top_k, repetition_penalty; native kwargs: generate.*",
    "decoding": "llem calls it 'preset' (deterministic, standard, creative, factual) with the "
                "fields temperature, top_p, top_k, repetition_penalty; native kwargs: "
                "generate.*",
    "decoder_preset": "llem calls it 'preset': preset: [deterministic, creative]",
    "decoding_preset": "llem calls it 'preset': preset: [deterministic, creative]",
    "decoder_config": "llem calls it 'preset', or temperature/top_p/top_k beside it",
    "sampling": "write temperature, top_p, top_k, repetition_penalty (or preset:); native "
                "sampling kwargs under generate:",
    "do_sample": "llem samples when temperature > 0 (preset: deterministic is greedy)",
    "traffic": "llem calls it measurement.request_rate and measurement.arrival "
               "(poisson | constant): measurement: {request_rate: 4, arrival: poisson}; "
               "a served model under load: mode: server with server: {profile, rate}",
    "traffic_simulation": "write measurement: {request_rate: 4, arrival: poisson}",
    "query_rate": "llem calls it measurement.request_rate (requests/s)",
    "batching": "llem calls it 'batch_size': grid: {batch_size: [1, 8]}; per backend: "
                "per_backend: {vllm: {batch_size: 64}}",
    "batching_options": "llem calls it 'batch_size': grid: {batch_size: [1, 8]}",
    "batch": "llem calls it 'batch_size'",
    "quantization": "write transformers: {quantization: 4bit} (or 8bit); vllm: {quantization: "
                    "awq} is vLLM's own engine argument",
    "quantization_config": "write transformers: {quantization: 4bit} (or 8bit, or a map of "
                           "BitsAndBytesConfig settings)",
    "load_in_4bit": "write transformers: {quantization: 4bit}",
    "load_in_8bit": "write transformers: {quantization: 8bit}",
    "max_output_tokens": "llem calls it 'max_new_tokens'",
    "max_tokens": "llem calls it 'max_new_tokens'",
    "min_tokens": "llem calls it 'min_new_tokens'",
    "max_input_length": "llem calls it 'max_input_tokens'",
    "num_input_prompts": "llem calls it dataset.num_prompts",
    "num_prompts": "llem calls it dataset.num_prompts",
    "n_prompts": "llem calls it dataset.num_prompts",
    "n": "llem calls it dataset.num_prompts",
    "prompts": "llem calls it 'dataset': dataset: {source: file, path: prompts.jsonl}",
    "prompt_source": "llem calls it 'dataset': dataset: {source: builtin | file | hf | "
                     "ai_energy_score}",
    "random_seed": "llem calls it 'seed' (the generation seed; grid.seed)",
    "gpus": "llem calls it resources.gpus_per_job",
    "gpu_list": "llem calls it resources.gpus_per_job (Ray picks the GPUs)",
    "num_processes": "llem calls it resources.gpus_per_job",
    "results_dir": "llem calls it 'store'",
    "output_dir": "llem calls it 'store'",
    "warmup": "llem calls it measurement.warmup_requests",
    "warmup_runs": "llem calls it measurement.warmup_requests",
    "shared": "write shared values at the top: grid: scalars and the dataset:, "
              "measurement: sections apply to every point",
    "base": "write shared values at the top: grid: scalars and the dataset:, measurement: "
            "sections apply to every point",
}


def old_name_hint(path: str) -> str | None:
    """What llem calls path (a whole key or the last part of a dotted path), if it is a
    name users of other tools type; None otherwise."""
    for name in (path, path.rsplit(".", 1)[-1]):
        key = name.lower().replace("-", "_")
        if key in OLD_NAMES:
            return OLD_NAMES[key]
    return None


def old_value_hint(field: str, value: object) -> str | None:
    """llem's spelling of a value other tools spell otherwise (dataset names)."""
    if field == "dataset.source" and isinstance(value, str) and \
            value.lower().replace("-", "").replace("_", "") == "aienergyscore":
        return "write dataset.source: ai_energy_score"
    return None
