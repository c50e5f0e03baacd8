"""The values transformers' GenerationConfig would refuse (or misread) for the generate:
keys llem passes through untouched: checked when the grid loads, not at the first job after
Ray has started. `num_beams: -2` was recorded with every row while generate ran greedy
search (beam search starts above 1); `stop_strings: [[["a"]]]` failed inside generate.
Type and range only, as GenerationConfig.validate() reads them (transformers 5.x); rules
across keys stay with transformers."""

from __future__ import annotations

import math
from typing import Any

POSITIVE_INT = ("num_beams", "num_beam_groups", "num_assistant_tokens", "max_length",
                "prompt_lookup_num_tokens", "max_matching_ngram_size", "top_h")
NON_NEGATIVE_INT = ("no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "min_length",
                    "assistant_early_exit", "prefill_chunk_size", "max_cache_len")
PROBABILITY = ("epsilon_cutoff", "eta_cutoff", "min_p", "typical_p",
               "assistant_confidence_threshold")  # 0 to 1
NON_NEGATIVE = ("diversity_penalty", "penalty_alpha", "max_time", "guidance_scale")
ANY_FLOAT = ("length_penalty", "encoder_repetition_penalty")
BOOLEAN = ("use_cache", "renormalize_logits", "remove_invalid_values", "low_memory",
           "output_attentions", "output_hidden_states", "output_scores", "output_logits",
           "return_dict_in_generate", "token_healing", "disable_compile")


def value_problem(key: str, value: Any) -> str | None:
    """Why transformers would refuse generate.key: value, else None (keys not listed here
    are left to transformers)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if key in POSITIVE_INT and not (_int(value) and value >= 1):
        return f"must be a whole number of at least 1 (got {value!r})"
    if key in NON_NEGATIVE_INT and not (_int(value) and value >= 0):
        return f"must be a whole number of at least 0 (got {value!r})"
    if key in PROBABILITY and not (number and 0 <= value <= 1):
        return f"must be a number from 0 to 1 (got {value!r})"
    if key in NON_NEGATIVE and not (number and math.isfinite(value) and value >= 0):
        return f"must be a number of at least 0 (got {value!r})"
    if key in ANY_FLOAT and not (number and math.isfinite(value)):
        return f"must be a number (got {value!r})"
    if key in BOOLEAN and not isinstance(value, bool):
        return f"must be true or false (got {value!r})"
    if key == "early_stopping" and not (isinstance(value, bool) or value == "never"):
        return f"must be true, false or never (got {value!r})"
    if key == "stop_strings" and not (_text(value) or (
            isinstance(value, list) and value and all(_text(v) for v in value))):
        return f"must be a string or a list of strings (got {value!r})"
    return None


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""
