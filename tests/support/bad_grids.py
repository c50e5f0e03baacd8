"""The bad-grid corpus (support/data/bad_grids/): each file and the regex its one-line
error must match (searched after 'error: <file>'); ':N:' pins the line the message names."""

from __future__ import annotations

from tests.support.paths import BAD_GRIDS

BAD = BAD_GRIDS

EXPECTED: dict[str, str] = {
    # YAML itself
    "malformed_unclosed_bracket.yaml": r":3: malformed YAML: expected ',' or '\]'.*flow sequence "
                                       r"started on line 2",
    "malformed_bad_indentation.yaml": r":5: malformed YAML: mapping values are not allowed",
    "malformed_tab_indentation.yaml": r":4: malformed YAML: found character '\\t'",
    "duplicate_top_key.yaml": r":5: 'cycles': duplicate key \(first written on line 4\)",
    "duplicate_nested_key.yaml": r":7: 'grid\.batch_size': duplicate key \(first written on "
                                 r"line 5\)",
    "key_is_a_list.yaml": r":4: a key must be a plain value",
    "key_with_newline.yaml": r":4: 'cyc\\nles': unknown key \(did you mean 'cycles'\?\)",
    "alias_bomb.yaml": r"more than 200000 values after expanding anchors/aliases",
    "merge_key_bomb.yaml": r":4: 'x0': unknown key",
    "alias_recursive.yaml": r":4: 'grid\.batch_size\.1': an alias refers to the value that "
                            r"contains it",
    "deeply_nested.yaml": r":5: values are nested more than 64 levels deep",
    "unsafe_python_tag.yaml": r":5: 'grid\.seed': bad value: could not determine a "
                              r"constructor for the tag '.*python/name:os\.system'",
    "unsafe_python_object.yaml": r":4: 'grid': unsupported YAML tag '.*python/object/apply",
    "non_utf8.yaml": r":3: not UTF-8 text \(byte 0xe9\)",
    # the file's shape
    "empty_file.yaml": r": the file is empty",
    "comments_only.yaml": r": the file is empty",
    "file_is_list.yaml": r":1: the file must be a map of settings .*not a list",
    "top_level_scalar.yaml": r":1: the file must be a map of settings .*not a single value",
    "missing_name.yaml": r": 'name': required key is missing \(add e\.g\. name:",
    "missing_models.yaml": r": 'models': required key is missing \(add e\.g\. models:",
    # keys
    "unknown_top_key.yaml": r":4: 'cycels': unknown key \(did you mean 'cycles'\?\)",
    "unknown_grid_parameter.yaml": r":5: 'grid\.batchsize': unknown parameter 'batchsize' "
                                   r"\(did you mean 'batch_size'\?\)",
    "unknown_measurement_setting.yaml": r":5: 'measurement\.warmup_request': unknown "
                                        r"measurement setting.*did you mean "
                                        r"'measurement\.warmup_requests'",
    "unknown_dataset_setting.yaml": r":5: 'dataset\.num_prompt': unknown dataset setting.*"
                                    r"did you mean 'dataset\.num_prompts'",
    "unknown_resources_setting.yaml": r":5: 'resources\.gpu_per_job': unknown resources "
                                      r"setting.*did you mean 'resources\.gpus_per_job'",
    "engine_section_without_param.yaml": r":5: 'grid\.generate': 'generate' needs a parameter "
                                         r"name",
    # types and values
    "batch_size_string.yaml": r":5: 'grid\.batch_size': must be a whole number \(got 'eight'\)",
    "cycles_float.yaml": r":4: 'cycles': must be a whole number \(got 1\.5\)",
    "models_int.yaml": r":2: 'models': must be a list.*\(got 5\)",
    "streaming_maybe.yaml": r":5: 'grid\.streaming': must be true or false \(got 'maybe'\)",
    "batch_size_zero.yaml": r":5: 'grid\.batch_size\.1': must be >= 1 \(got 0\)",
    "cycles_zero.yaml": r":4: 'cycles': must be >= 1 \(got 0\)",
    "max_new_tokens_negative.yaml": r":5: 'grid\.max_new_tokens': must be >= 1 \(got -5\)",
    "bad_dtype.yaml": r":5: 'grid\.dtype': unknown dtype 'float8'; use one of auto, float32",
    "empty_list_axis.yaml": r":5: 'grid\.batch_size': empty list: an axis needs at least one",
    "backends_empty.yaml": r":3: 'backends': must list at least one value",
    "grid_not_a_map.yaml": r":4: 'grid': must be a map of settings.*\(got a list\)",
    "section_not_a_map.yaml": r":4: 'measurement': must be a map of settings.*\(got 5\)",
    "order_unknown.yaml": r":4: 'order': must be 'interleaved', 'sequential' or 'shuffled' "
                          r"\(got 'random'\)",
    "dataset_unknown_source.yaml": r":5: 'dataset\.source': must be 'builtin', 'file' or 'hf' "
                                   r"\(got 's3'\)",
    "dependent_group_bad_value.yaml": r":7: 'grid\.measurement\.1': "
                                      r"measurement\.warmup_requests: must be >= 0 \(got -1\)",
    # the campaign name becomes a path in the store
    "name_dotdot.yaml": r":1: 'name': campaign name 'a\.\.b' must be .*not contain '\.\.'",
    "name_slash.yaml": r":1: 'name': campaign name 'runs/today' must be",
    "name_control_char.yaml": r":1: 'name': campaign name 'bad\\x07name' must be",
    # include / exclude / variants
    "include_exclude_contradiction.yaml": r":9: 'exclude\.0': this rule drops every point that "
                                          r"include rule 1 .* keeps",
    "exclude_covers_include.yaml": r":10: 'exclude\.0': this rule drops every point that "
                                   r"include rule 1",
    "exclude_drops_everything.yaml": r": the grid is empty: include/exclude rules drop all 2 "
                                     r"points \(loosen an exclude rule",
    "include_matches_nothing.yaml": r": the grid is empty: include/exclude rules drop all 2 "
                                    r"points",
    "token_in_engine_args.yaml": r":5: 'transformers\.token': looks like a credential; llem "
                                 r"does not take credentials from grid files",
    "token_shaped_value.yaml": r":5: 'grid\.generate\.note\.1': looks like a credential",
    "include_unknown_key.yaml": r":7: 'include\.0\.batchsize': unknown parameter 'batchsize' "
                                r"\(did you mean 'batch_size'\?\)",
    "include_not_a_map.yaml": r":5: 'include\.0': must be a map of settings",
    "variants_not_a_list.yaml": r":5: 'grid\.variants': 'variants' must be a list of maps",
    "variants_list_of_scalars.yaml": r":5: 'grid\.variants\.0': 'variants' must be a list of "
                                     r"maps",
    "variants_unknown_path.yaml": r":7: 'grid\.variants\.1': unknown parameter "
                                  r"'measurment\.warmup_requests' \(did you mean "
                                  r"'measurement\.warmup_requests'\?\)",
    "too_many_points.yaml": r": the grid has 150 points, over max_points=100 \(batch_size: 6, "
                            r"max_new_tokens: 5, seed: 5\) \(narrow an axis, add exclude: rules, "
                            r"or raise max_points\)",
    # models and backends
    "model_path_missing.yaml": r":2: 'models\.0': model path .*/bad_grids/nope does not exist",
    "unknown_builtin_model.yaml": r":2: 'models\.0': unknown built-in model 'llem:huge'",
    "unknown_backend.yaml": r":3: 'backends\.0': unknown backend 'transformer' \(did you mean "
                            r"'transformers'\?\)",
    "engine_section_unlisted_backend.yaml": r":4: 'vllm': engine settings for 'vllm', which is "
                                            r"not in backends",
    "engine_param_unlisted_backend.yaml": r":5: 'grid\.vllm\.max_num_seqs\.0': "
                                          r"'vllm\.max_num_seqs' is a setting of 'vllm', which "
                                          r"is not in backends",
    "unsupported_param_for_backend.yaml": r":6: 'grid\.input_policy': backend 'tensorrt' does "
                                          r"not support 'input_policy'",
    # datasets (prompt files are read by llem.config.checks.check_datasets, before Ray starts)
    "dataset_file_without_path.yaml": r":5: 'dataset\.source': dataset\.source is 'file' but "
                                      r"dataset\.path is not set",
    "prompt_file_missing.yaml": r":6: 'dataset\.path': prompt file .*/data/nope\.jsonl does not "
                                r"exist",
    "prompt_file_in_axis_missing.yaml": r":6: 'dataset\.path\.1': prompt file "
                                        r".*/data/gone\.jsonl does not exist",
    "prompt_file_empty.yaml": r":6: 'dataset\.path': prompt file .*/data/empty\.jsonl is empty",
    "prompt_file_malformed.yaml": r":6: 'dataset\.path': bad prompt file: "
                                  r".*/data/malformed\.jsonl:2: .*JSON",
    "prompt_file_not_utf8.yaml": r":6: 'dataset\.path': prompt file .*/data/latin1\.jsonl:2 is "
                                 r"not UTF-8",
    "prompt_file_is_a_folder.yaml": r":4: 'dataset\.path': prompt file .*/data is not a file",
    # needs the cluster: detected by the driver after Ray starts (no actor, no store files)
    "gpus_per_job_too_many.yaml": r"needs 64 GPUs on one node; the cluster has no GPU .*"
                                  r"resources\.gpus_per_job",
}

# Cases found only in the driver, once Ray is up; llem run prints its plan line first.
CLUSTER_CASES = {"gpus_per_job_too_many.yaml"}
# Cases found by llem.config.checks.check_datasets, which `llem run` must call before Ray starts.
PROMPT_CASES = {n for n in EXPECTED if n.startswith("prompt_file_")}
FAST_CASES = {"alias_bomb.yaml", "merge_key_bomb.yaml", "deeply_nested.yaml"}
