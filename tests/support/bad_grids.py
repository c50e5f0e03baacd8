"""The bad-grid corpus (support/data/bad_grids/): each file and the regex its error must
match (searched after 'error: <file>'); ':N:' pins the line the message names. A file with
several independent mistakes lists one regex per error line, in the order of the lines."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support.paths import BAD_GRIDS

BAD = BAD_GRIDS

EXPECTED: dict[str, str | list[str]] = {
    # YAML itself
    "malformed_unclosed_bracket.yaml": r":3: malformed YAML: expected ',' or '\]'.*flow sequence "
                                       r"started on line 2",
    "malformed_bad_indentation.yaml": r":5: malformed YAML: mapping values are not allowed",
    "malformed_tab_indentation.yaml": r":4: malformed YAML: found character '\\t'",
    "duplicate_top_key.yaml": r":5: 'cycles': duplicate key \(first written on line 4\)",
    "duplicate_nested_key.yaml": r":7: 'grid\.batch_size': duplicate key \(first written on "
                                 r"line 5\)",
    "key_is_a_list.yaml": r":4: a key must be a plain value",
    "key_with_newline.yaml": r":4: 'cyc\\nles': a key cannot hold control characters",
    "alias_bomb.yaml": r"more than 200000 values after expanding anchors/aliases",
    "merge_key_bomb.yaml": [rf":{n + 4}: 'x{n}': unknown key" for n in range(12)],
    "alias_recursive.yaml": r":4: 'grid\.batch_size\.1': an alias refers to the value that "
                            r"contains it",
    "deeply_nested.yaml": r":5: values are nested more than 64 levels deep",
    "unsafe_python_tag.yaml": r":5: 'grid\.seed': unsupported YAML tag "
                              r"'.*python/name:os\.system'",
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
    "order_unknown.yaml": r":4: 'order': must be 'interleaved', 'sequential', 'shuffled' or "
                          r"'williams' \(got 'random'\)",
    "dataset_unknown_source.yaml": r":5: 'dataset\.source': must be 'builtin', 'file', 'hf' or "
                                   r"'ai_energy_score' \(got 's3'\)",
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
    "include_matches_nothing.yaml": r":7: 'include\.0\.batch_size': include rule 1 asks for "
                                    r"batch_size 4, which no point of this grid has",
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
    # credentials: keys, !!binary, env var names on the credential list; never echoed
    "cred_token_as_key.yaml": r":6: 'grid\.generate': a key looks like a credential; llem "
                              r"does not take credentials from grid files",
    "cred_token_in_binary.yaml": r":5: 'grid\.generate\.note': a !!binary value that decodes "
                                 r"to a credential",
    "cred_token_in_binary_key.yaml": r":6: 'grid\.generate': a key that decodes to a "
                                     r"credential",
    "cred_env_var_hub_token.yaml": r":8: 'environments\.noop\.env_vars\."
                                   r"HUGGING_FACE_HUB_TOKEN': a credential variable: llem "
                                   r"takes no credentials from grid files .*LLEM_SECRETS_FILE",
    "cred_env_var_aws_secret.yaml": r":6: 'environments\.noop\.env_vars\."
                                    r"AWS_SECRET_ACCESS_KEY': a credential variable",
    "cred_env_var_secret_shaped_name.yaml": [
        r":7: 'environments\.noop\.env_vars\.MY_SERVICE_API_KEY': a credential variable",
        r":8: 'environments\.noop\.env_vars\.DB_PASSWORD': a credential variable"],
    "cred_password_in_generate.yaml": r":6: 'grid\.generate\.password': looks like a "
                                      r"credential",
    # strict types: a boolean is not a number, text is not a number, no tags but plain ones
    "type_batch_size_yes.yaml": r":5: 'grid\.batch_size': must be a whole number \(got true: "
                                r"yes/no/on/off/true/false are YAML booleans\)",
    "type_cycles_on.yaml": r":4: 'cycles': must be a whole number \(got true:",
    "type_batch_size_quoted.yaml": r":5: 'grid\.batch_size': must be a whole number \(got the "
                                   r"text '8': write it without quotes\)",
    "type_max_new_tokens_float.yaml": r":5: 'grid\.max_new_tokens': must be a whole number "
                                      r"\(got 8\.0\)",
    "type_temperature_text.yaml": r":5: 'grid\.temperature\.0': must be a number \(got the "
                                  r"text '0\.7'",
    "type_streaming_number.yaml": r":5: 'grid\.streaming': must be true or false \(got 1\)",
    "type_binary_model.yaml": r":2: 'models\.0': unsupported YAML tag '.*binary'",
    "type_timestamp_seed.yaml": r":5: 'grid\.seed': a date or time \(quote it to write text\)",
    "type_set_tag.yaml": r":4: 'grid': unsupported YAML tag '.*set'",
    "type_bool_for_text.yaml": r":5: 'grid\.dtype': must be text \(got false:",
    # what the store can hold: int32/int64 columns, finite numbers, rates and durations
    "bound_top_k_over_int32.yaml": r":5: 'grid\.top_k': must be <= 2147483647, the store's "
                                   r"32-bit limit \(got 3000000000\)",
    "bound_max_concurrency_1e10.yaml": r":5: 'measurement\.max_concurrency': must be a whole "
                                       r"number \(got '1e10', which YAML reads as text",
    "bound_max_input_tokens_over_int32.yaml": r":5: 'grid\.max_input_tokens\.1': must be <= "
                                              r"2147483647",
    "bound_seed_over_int64.yaml": r":5: 'grid\.seed': 9223372036854775808 is outside the whole "
                                  r"numbers the store holds \(64-bit\)",
    "bound_order_seed_over_int64.yaml": r":5: 'seed': -9223372036854775809 is outside",
    "bound_timeout_inf.yaml": r":5: 'measurement\.job_timeout_s': \.inf is not a finite number",
    "bound_nan_in_engine_args.yaml": r":5: 'grid\.generate\.scale\.1': \.nan is not a finite "
                                     r"number",
    "bound_tiny_request_rate.yaml": r":5: 'measurement\.request_rate': must be >= 0\.001 "
                                    r"\(got 1e-09\)",
    "bound_timeout_a_year.yaml": r":5: 'measurement\.job_timeout_s': must be <= 604800",
    "bound_max_points_1e12.yaml": r":4: 'max_points': must be <= 10000000",
    "bound_custom_resource_inf.yaml": r":5: 'resources\.custom\.TPU': \.inf is not a finite",
    # one parameter written twice: the later one would win silently
    "conflict_dotted_and_nested.yaml": r":7: 'grid\.vllm\.max_num_seqs': 'vllm\.max_num_seqs' "
                                       r"is also set on line 5 \(keep one of them",
    "conflict_section_and_grid.yaml": r":7: 'grid\.measurement\.warmup_cv': "
                                      r"'measurement\.warmup_cv' is also set on line 5",
    "conflict_fixed_and_axis.yaml": r":7: 'grid\.dataset\.num_prompts': 'dataset\.num_prompts' "
                                    r"is also set on line 5",
    "conflict_in_variant.yaml": r":8: 'grid\.variants\.1\.measurement\.sample_hz': "
                                r"'measurement\.sample_hz' is also set on line 7",
    "conflict_in_dependent_group.yaml": r":6: 'grid\.generate\.0\.a\.b': 'generate\.a\.b' is "
                                        r"also set on line 6",
    # rules across fields, on the combinations the file makes (never an internal error)
    "cross_min_over_max_axes.yaml": r":6: 'grid\.min_new_tokens\.1': min_new_tokens \(50\) is "
                                    r"over max_new_tokens \(8\)",
    "cross_min_over_max_fixed.yaml": r":6: 'grid\.max_new_tokens\.0': min_new_tokens \(100\) "
                                     r"is over max_new_tokens \(64\)",
    "cross_pad_without_length.yaml": r":5: 'grid\.input_policy\.1': input_policy: pad needs "
                                     r"max_input_tokens",
    "cross_unknown_preset.yaml": r":5: 'grid\.preset\.1': unknown preset 'sharp'",
    # bounds on the work a file can ask for
    "blowup_max_points_raised.yaml": r":4: 'max_points': must be <= 10000000 "
                                     r"\(got 100000000\)",
    # refused at load time (were refused late, or as internal errors)
    "late_store_empty.yaml": r":4: 'store': must be a folder path or URI",
    "late_store_newline.yaml": r":4: 'store': must be a folder path or URI",
    "late_python_unknown_user.yaml": r":7: 'environments\.noop\.python': cannot expand "
                                     r"'~nosuchuser-llem': no such user",
    "late_model_homoglyph.yaml": r":2: 'models\.0': model 'meta-llam.*' is not a hub id: "
                                 r"character U\+0430 at position 10 is not ASCII",
    "late_model_not_a_hub_id.yaml": r":2: 'models\.0': model 'org/name/extra' is not a hub id",
    "late_model_double_dash.yaml": r":2: 'models\.0': model 'org/bad--name' is not a hub id",
    "late_env_var_name_equals.yaml": r":6: 'environments\.noop\.env_vars\.A=B': an environment "
                                     r"variable name is letters, digits and '_'",
    "late_env_var_name_space.yaml": r":7: 'environments\.noop\.env_vars\.MY VAR': an "
                                    r"environment variable name",
    "late_image_uri_shell.yaml": r":7: 'environments\.noop\.image_uri': must be an image "
                                 r"reference .*no spaces or shell characters",
    # several independent mistakes: one line each, in the order of their lines
    "many_independent_mistakes.yaml": [
        r":4: 'cycels': unknown key \(did you mean 'cycles'\?\)",
        r":5: 'order': must be 'interleaved', 'sequential', 'shuffled' or 'williams' "
        r"\(got 'random'\)",
        r":7: 'grid\.batchsize': unknown parameter 'batchsize'",
        r":8: 'grid\.dtype': unknown dtype 'float8'",
        r":10: 'measurement\.warmup_cv': must be > 0\.0 \(got -1\)"],
    "many_yaml_mistakes.yaml": [
        r":5: 'grid\.seed': unsupported YAML tag '.*binary'",
        r":7: 'grid\.batch_size': duplicate key \(first written on line 6\)",
        r":8: 'grid\.max_new_tokens': \.inf is not a finite number"],
    "many_mistakes_stop_at_20.yaml": [rf":{n + 5}: 'grid\.bad_{n}': unknown parameter"
                                      for n in range(20)] + [r": stopped after 20 errors"],
    # engine and generate keys the library would reject when the model loads: refused at
    # validation, with the right place (llem.backends.<name>.options.check_keys)
    "engine_vllm_sampling_parameter.yaml": r":5: 'vllm\.presence_penalty': a sampling "
                                           r"parameter, not an engine argument \(write "
                                           r"generate\.presence_penalty: 0\.5\)",
    "engine_vllm_dtype_beside_dtype.yaml": r":6: 'vllm\.dtype': duplicates llem's own 'dtype'"
                                           r".*\(write llem's dtype: float16 \(per backend: "
                                           r"per_backend: \{vllm: \{dtype: float16\}\}\)",
    "engine_vllm_batch_size.yaml": r":5: 'vllm\.batch_size': not an engine argument of vLLM "
                                   r"\(.*per_backend: \{vllm: \{batch_size: 64\}\}",
    "engine_transformers_batch_size.yaml": r":5: 'transformers\.batch_size': not a "
                                           r"from_pretrained argument.*grid: \{batch_size: 8\}",
    "engine_transformers_load_in_4bit.yaml": r":5: 'transformers\.load_in_4bit': not a "
                                             r"from_pretrained argument in transformers 5 .*"
                                             r"\(write transformers: \{quantization: 4bit\}\)",
    "engine_transformers_misspelled.yaml": r":5: 'transformers\.attn_implmentation': not a "
                                           r"from_pretrained argument of transformers 5 .*"
                                           r"\(did you mean 'attn_implementation'\?\)",
    "engine_transformers_sampling_parameter.yaml": r":5: 'transformers\.temperature': a "
                                                   r"generation setting, not a "
                                                   r"from_pretrained argument \(write llem's "
                                                   r"temperature: 0\.7\)",
    "generate_key_the_backend_lacks.yaml": r":5: 'grid\.generate\.presence_penalty': "
                                           r"transformers' generate has no such setting .*"
                                           r"per_backend: \{vllm: \{generate\."
                                           r"presence_penalty: 0\.5\}\}",
    "generate_key_duplicates_llem_field.yaml": r":5: 'grid\.generate\.temperature': set by llem "
                                               r"from temperature \(write llem's temperature: "
                                               r"0\.7",
    # the names a migrating user types: llem's name for each, never a wrong guess
    "old_name_sweep.yaml": r":4: 'sweep': unknown key \(llem calls it 'grid'",
    "old_name_precision_in_grid.yaml": r":5: 'grid\.precision': unknown parameter 'precision' "
                                       r"\(llem calls it 'dtype'",
    "old_name_model.yaml": [r": 'models': required key is missing",
                            r":2: 'model': unknown key \(llem calls it 'models'"],
    "old_names_several.yaml": [
        r":3: 'backend': unknown key \(llem calls it 'backends'",
        r":4: 'n_cycles': unknown key \(llem calls it 'cycles'",
        r":5: 'num_cycles': unknown key \(llem calls it 'cycles'",
        r":6: 'decoder': unknown key \(llem calls it 'preset'",
        r":7: 'traffic': unknown key \(llem calls it measurement\.request_rate and "
        r"measurement\.arrival",
        r":8: 'batching': unknown key \(llem calls it 'batch_size'",
        r":9: 'precision': unknown key \(llem calls it 'dtype'",
        r":10: 'experiment': unknown key \(llem calls it 'experiments'"],
    "old_name_fp16.yaml": r":5: 'grid\.fp16': unknown parameter 'fp16' \(write dtype: float16\)",
    # per_backend, experiments, named groups, datasets, max_points
    "per_backend_unknown_backend.yaml": r":5: 'per_backend\.vlm': per_backend values for 'vlm', "
                                        r"which is not in backends: \(known here: noop, vllm\)",
    "per_backend_engine_argument.yaml": r":5: 'per_backend\.vllm\.max_num_seqs': unknown "
                                        r"parameter 'max_num_seqs': per_backend takes llem's "
                                        r"parameters \(an engine argument of vllm\? write it "
                                        r"in the vllm: section",
    "per_backend_engine_section_path.yaml": r":5: 'per_backend\.vllm\.vllm\.max_num_seqs': "
                                            r"engine arguments are written in the 'vllm:' "
                                            r"section",
    "experiment_unknown_backend.yaml": r":6: 'experiments\.1\.backend': unknown backend 'vlm' "
                                       r"\(did you mean 'vllm'\?\)",
    "experiment_unknown_parameter.yaml": r":6: 'experiments\.1\.batchsize': unknown parameter "
                                         r"'batchsize' \(did you mean 'batch_size'\?\)",
    "named_group_misspelled_parameter.yaml": r":5: 'grid\.genrate': unknown parameter "
                                             r"'genrate' .*\(did you mean 'generate'\?\)",
    "named_group_scalar_entry.yaml": r":5: 'grid\.quant\.2': 'quant' must be a list of maps of "
                                     r"full paths",
    "dataset_named_source_with_path.yaml": r":6: 'dataset\.path': dataset\.source "
                                           r"'ai_energy_score' names its own dataset",
    "dataset_old_source_name.yaml": r":5: 'dataset\.source': must be 'builtin', 'file', 'hf' or "
                                    r"'ai_energy_score' \(got 'ai-energy-score'\) \(write "
                                    r"dataset\.source: ai_energy_score\)",
    "dataset_order_unknown.yaml": r":5: 'dataset\.order': must be 'sample' or 'file' "
                                  r"\(got 'first'\)",
    "too_many_points_after_exclude.yaml": r": the grid has 5 points after include/exclude "
                                          r"\(of 6\), over max_points=4",
    # on a machine without GPUs and no cluster given: refused before Ray starts
    # (llem.scheduler.here); on a cluster, by the driver after Ray starts (no actor, no files)
    "gpus_per_job_too_many.yaml": r"needs 64 GPUs on one node; (the cluster|this machine) "
                                  r"has no GPU .*resources\.gpus_per_job",
}

# Cases found only in the driver, once Ray is up; llem run prints its plan line first.
CLUSTER_CASES = {"gpus_per_job_too_many.yaml"}
# Cases found by llem.config.checks.check_datasets, which `llem run` must call before Ray starts.
PROMPT_CASES = {n for n in EXPECTED if n.startswith("prompt_file_")}
FAST_CASES = {"alias_bomb.yaml", "merge_key_bomb.yaml", "deeply_nested.yaml"}


def patterns(name: str) -> list[str]:
    """The regexes of a corpus file's error lines, in order."""
    want = EXPECTED[name]
    return [want] if isinstance(want, str) else list(want)


def check_lines(lines: list[str], grid: Path | str, expected: list[str],
                located: bool = True) -> None:
    """One line per expected error, in order; each names the grid file (located) and
    matches its regex after the file's name."""
    assert len(lines) == len(expected), \
        f"{len(lines)} error lines, expected {len(expected)}: {lines!r}"
    for line, pattern in zip(lines, expected):
        assert line.strip() == line and line, repr(line)
        if located:
            assert line.startswith((f"{grid}:", f"{grid} ")), line
            line = line[len(str(grid)):]
        assert re.search(pattern, line), f"{pattern!r} not in {line!r}"


def assert_one_line_error(r: subprocess.CompletedProcess[str], grid: Path, want: str) -> None:
    """The CLI refused with error lines only (no traceback, no internal error), exit 2, each
    line matching want at grid's file and line (check_lines)."""
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    lines = r.stderr.rstrip("\n").split("\n")
    assert all(line.startswith("error: ") for line in lines), r.stderr
    check_lines([line[len("error: "):] for line in lines], grid, [want])
