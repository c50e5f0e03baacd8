"""Values a grid file may hold: no credential (keys, !!binary, env var names), strict types (a
boolean is not a number, text is not a number, only plain YAML tags), what the store can hold
(int32/int64 columns, finite numbers, bounded rates and durations), and values a process, Ray
or the hub would refuse late (store, python, env var names, image references, hub ids)."""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pydantic import BaseModel

import llem.config.credential_scan as scan
import llem.config.load as load_mod
from llem.config.campaign import Campaign
from llem.config.environments import EnvChoice
from llem.config.grid import iter_jobs
from llem.config.load import from_data, hub_id_problem, load_text
from llem.config.models import (
    INT32_MAX,
    STORED_INT32,
    Dataset,
    Measurement,
    Point,
    Resources,
    Scheduling,
    Server,
)
from llem.config.yaml_source import INT64, MAX_CHARS, SourceMap
from llem.credentials import ENV_NAMES
from llem.errors import ConfigError, ConfigErrors
from llem.store.schema import SCHEMAS
from tests.support.grids import HEAD, error_of

TOKEN = "hf_PlantedTokenDoNotLeak0123456789abcd"


def point_of(body: str, head: str = HEAD) -> Point:
    (job,) = list(iter_jobs(load_text(head + body, "grid.yaml")))
    return job.point


# --- credentials ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    f"grid:\n  generate:\n    {TOKEN}: 1\n",  # a key: it would become a column name
    f"grid:\n  generate.{TOKEN}: 1\n",
    f"grid:\n  generate.note: !!binary {base64.b64encode(TOKEN.encode()).decode()}\n",
    f"grid:\n  generate:\n    ? !!binary {base64.b64encode(TOKEN.encode()).decode()}\n"
    "    : 1\n",
    f"include:\n  - {{generate.x: [{TOKEN}]}}\n",
    f"noop:\n  nested: {{deeper: [a, {{b: {TOKEN}}}]}}\n",
])
def test_a_token_anywhere_is_refused_and_never_shown(body: str) -> None:
    msg = error_of(body)
    assert "credential" in msg and TOKEN not in msg, msg
    assert ":5:" in msg or ":6:" in msg, msg  # the line of the key or value


@pytest.mark.parametrize("name", [*ENV_NAMES, "GITHUB_TOKEN", "MY_SERVICE_API_KEY", "DB_PASSWORD",
                                  "app_secret", "GOOGLE_APPLICATION_CREDENTIALS", "X_KEY"])
def test_credential_env_var_names_are_refused_whatever_the_value(name: str) -> None:
    msg = error_of(f"environments:\n  noop:\n    env_vars:\n      {name}: x\n")
    assert f":7: 'environments.noop.env_vars.{name}': a credential variable" in msg, msg
    assert "LLEM_SECRETS_FILE" in msg


@pytest.mark.parametrize("name", ["TOKENIZERS_PARALLELISM", "HF_HUB_DISABLE_IMPLICIT_TOKEN",
                                  "CUDA_VISIBLE_DEVICES", "HF_TOKEN_PATH", "VLLM_USE_V1",
                                  "MAX_TOKENS", "KEYRING_BACKEND"])
def test_ordinary_env_var_names_pass(name: str) -> None:
    load_text(HEAD + f"environments:\n  noop:\n    env_vars:\n      {name}: '1'\n", "g.yaml")


def test_every_credential_in_a_file_is_reported_at_once() -> None:
    with pytest.raises(ConfigErrors) as exc:
        load_text(HEAD + f"grid:\n  generate.a: {TOKEN}\n  generate.password: hunter22\n"
                  "environments:\n  noop:\n    env_vars: {AWS_SECRET_ACCESS_KEY: x}\n"
                  "cycels: 2\n", "g.yaml")
    lines = exc.value.lines()
    assert len(lines) == 3 and all("credential" in line for line in lines), lines
    assert "cycels" not in str(exc.value)  # nothing else is looked at: no message quotes one


def test_the_scan_looks_once_at_each_distinct_string(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = scan.token_shaped

    def counting(text: str) -> bool:
        calls.append(len(text))
        return real(text)

    monkeypatch.setattr(scan, "token_shaped", counting)
    big = "x" * 20_000
    aliases = ", ".join(["*s"] * 150)  # 3M characters after expansion: under MAX_CHARS
    load_text(HEAD + f"noop:\n  a: &s {big}\n  b: [{aliases}]\n", "g.yaml")
    assert sum(1 for n in calls if n == len(big)) == 1, len(calls)


def test_text_after_expanding_aliases_is_bounded() -> None:
    big = "x" * 200_000
    aliases = ", ".join(["*s"] * 30)
    msg = error_of(f"noop:\n  a: &s {big}\n  b: [{aliases}]\n")
    assert f"more than {MAX_CHARS} characters of text after expanding" in msg


# --- strict types --------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "want"), [
    ("grid:\n  batch_size: yes\n", "must be a whole number (got true: yes/no/on/off/true"),
    ("grid:\n  batch_size: on\n", "must be a whole number (got true"),
    ("grid:\n  batch_size: true\n", "must be a whole number (got true"),
    ("cycles: on\n", "'cycles': must be a whole number (got true"),
    ("max_points: no\n", "'max_points': must be a whole number (got false"),
    ("grid:\n  batch_size: '8'\n", "(got the text '8': write it without quotes)"),
    ("grid:\n  batch_size: 8.0\n", "must be a whole number (got 8.0)"),
    ("grid:\n  temperature: '0.7'\n", "must be a number (got the text '0.7'"),
    ("grid:\n  temperature: off\n", "must be a number (got false"),
    ("dataset:\n  num_prompts: 1e3\n", "which YAML reads as text"),
    ("grid:\n  streaming: 1\n", "must be true or false (got 1)"),
    ("grid:\n  streaming: 'true'\n", "must be true or false (got 'true')"),
    ("grid:\n  dtype: no\n", "must be text (got false"),
    ("resources:\n  gpus_per_job: [0, yes]\n", "'resources.gpus_per_job.1': must be a whole"),
    ("scheduling:\n  retries: yes\n", "'scheduling.retries': must be a whole number"),
    ("server:\n  concurrency: '4'\n", "must be a whole number (got the text '4'"),
    ("environments:\n  noop:\n    env_vars: {A: 1}\n",
     "must be text (got 1, which YAML reads as a number: quote it"),
])
def test_no_silent_coercion(body: str, want: str) -> None:
    assert want in error_of(body)


@pytest.mark.parametrize(("body", "want"), [
    ("name: t\nmodels: [!!binary bGxlbTp0aW55]\nbackends: [noop]\n", "unsupported YAML tag"),
    (HEAD + "grid:\n  seed: 2024-01-01\n", "a date or time (quote it to write text)"),
    (HEAD + "grid:\n  generate.when: 2024-01-01 10:00:00\n", "a date or time"),
    (HEAD + "grid: !!set {a, b}\n", "unsupported YAML tag"),
    (HEAD + "grid: !!omap [a: 1]\n", "unsupported YAML tag"),
    (HEAD + "grid:\n  generate.x: !!python/tuple [1, 2]\n", "unsupported YAML tag"),
    (HEAD + "grid:\n  generate:\n    ? !!binary aGVsbG8=\n    : 1\n", "a key with the YAML tag"),
])
def test_only_plain_yaml_values(body: str, want: str) -> None:
    assert want in error_of(body, head="")


def test_what_strict_still_accepts() -> None:
    p = point_of("grid:\n  streaming: yes\n  temperature: 1\n  top_p: !!float 1\n"
                 "  generate.note: !!str 8\n  batch_size: !!int '4'\n")
    assert p.streaming is True  # YAML booleans are booleans
    assert p.temperature == 1.0 and isinstance(p.temperature, float)  # an int is a fine float
    assert p.generate == {"note": "8"} and p.batch_size == 4  # explicit core tags are plain
    same = point_of("grid:\n  streaming: true\n  temperature: 1.0\n"
                    "  generate.note: '8'\n  batch_size: 4\n")
    assert same.model_dump(mode="json") == p.model_dump(mode="json")  # the same job id


# --- what the store can hold -----------------------------------------------------------------


def _bounds(field: Any) -> tuple[float | None, float | None]:
    lo = hi = None
    for m in field.metadata:  # annotated_types Ge/Gt/Le/Lt
        lo = next((v for a in ("ge", "gt") if (v := getattr(m, a, None)) is not None), lo)
        hi = next((v for a in ("le", "lt") if (v := getattr(m, a, None)) is not None), hi)
    return lo, hi


def _whole(field: Any) -> bool:
    return field.annotation in (int, int | None)


MODELS: dict[str, type[BaseModel]] = {"": Point, "dataset.": Dataset,
                                      "measurement.": Measurement, "resources.": Resources,
                                      "server.": Server}


def test_int32_columns_are_bounded_by_int32() -> None:
    runs = SCHEMAS["runs"]
    for path in STORED_INT32:
        prefix, _, name = path.rpartition(".")
        model = MODELS[prefix + "." if prefix else ""]
        assert runs.field(name).type == pa.int32(), path  # the store says int32
        _, hi = _bounds(model.model_fields[name])
        assert hi is not None and hi <= INT32_MAX, (path, hi)
    int32_columns = {f.name for f in runs if f.type == pa.int32()}
    for model in MODELS.values():  # a setting named as an int32 column fits one
        for name, field in model.model_fields.items():
            if _whole(field) and name in int32_columns:
                _, hi = _bounds(field)
                assert hi is not None and hi <= INT32_MAX, (model.__name__, name)
    for column in ("seed", "order_seed"):
        assert runs.field(column).type == pa.int64()


@pytest.mark.parametrize("model", [Point, Dataset, Measurement, Resources, Server, Scheduling,
                                   Campaign])
def test_every_whole_number_is_bounded_and_every_float_finite(model: type[BaseModel]) -> None:
    assert model.model_config.get("allow_inf_nan") is False
    assert model.model_config.get("strict") is True
    for name, field in model.model_fields.items():
        if _whole(field):
            lo, hi = _bounds(field)
            assert hi is not None and hi <= INT64[1], (model.__name__, name)
            assert lo is not None and lo >= INT64[0], (model.__name__, name)


@pytest.mark.parametrize(("body", "want"), [
    ("grid:\n  top_k: 3000000000\n", "must be <= 2147483647, the store's 32-bit limit"),
    ("grid:\n  min_new_tokens: 2147483648\n", "'grid.min_new_tokens': must be <="),
    ("measurement:\n  max_concurrency: 10000000000\n", "must be <= 2147483647"),
    ("grid:\n  max_input_tokens: 4294967296\n", "must be <= 2147483647"),
    ("grid:\n  seed: 9223372036854775808\n", "outside the whole numbers the store holds"),
    ("dataset:\n  seed: -9223372036854775809\n", "outside the whole numbers"),
    ("grid:\n  generate.n: 100000000000000000000\n", "outside the whole numbers"),
    ("grid:\n  temperature: .inf\n", ".inf is not a finite number"),
    ("grid:\n  top_p: .nan\n", ".nan is not a finite number"),
    ("grid:\n  generate.scale: -.inf\n", "-.inf is not a finite number"),
    ("noop:\n  x: [1.0, .NaN]\n", ".NaN is not a finite number"),
    ("measurement:\n  job_timeout_s: .inf\n", "not a finite number"),
    ("measurement:\n  job_timeout_s: 1.0e+9\n", "must be <= 604800"),
    ("scheduling:\n  start_timeout_s: 1.0e+9\n", "must be <= 604800"),
    ("measurement:\n  request_rate: 1.0e-9\n", "must be >= 0.001"),
    ("measurement:\n  request_rate: 1.0e+300\n", "must be <= 1000000"),
    ("server:\n  rate: 1.0e-7\n", "must be >= 0.001"),
    ("resources:\n  custom: {TPU: -1}\n", "custom resource 'TPU' must be between 0 and 1e9"),
    ("resources:\n  cpus_per_job: 1.0e+300\n", "must be <= 100000"),
    ("max_points: 1000000000000\n", "must be <= 10000000"),
])
def test_values_the_store_cannot_hold(body: str, want: str) -> None:
    assert want in error_of(body)


@pytest.mark.parametrize(("flag", "value", "want"), [
    ("temperature", math.inf, "must be a finite number"),
    ("top_k", 2**31, "the store's 32-bit limit"),
    ("grid.seed", 2**63, "the store's 64-bit limit"),
    ("seed", -(2**63) - 1, "the store's 64-bit limit"),
])
def test_command_line_values_have_the_same_bounds(flag: str, value: Any, want: str) -> None:
    with pytest.raises(ConfigError, match=want):
        from_data({"name": "t", "models": ["m"], "backends": ["noop"]},
                  SourceMap("command line"), Path.cwd(), overrides={flag: value})


# --- refused at load time, not late --------------------------------------------------------


@pytest.mark.parametrize(("body", "want"), [
    ("store: ''\n", "'store': must be a folder path or URI"),
    ("store: '   '\n", "'store': must be a folder path or URI"),
    ("store: \"a\\0b\"\n", "'store': must be a folder path or URI"),
    ("store: ' results'\n", "'store': must be a folder path or URI"),
    ("environments:\n  noop: {python: ~nosuchuser-llem/bin/python}\n",
     "cannot expand '~nosuchuser-llem': no such user"),
    ("environments:\n  noop: {python: ''}\n", "must be text on one line"),
    ("environments:\n  noop: {env_vars: {'A=B': x}}\n", "'environments.noop.env_vars.A=B': an "
     "environment variable name"),
    ("environments:\n  noop: {env_vars: {'1ABC': x}}\n", "an environment variable name"),
    ("environments:\n  noop: {env_vars: {'': x}}\n", "an environment variable name"),
    ("environments:\n  noop: {env_vars: {A: \"x\\0y\"}}\n", "cannot hold a NUL"),
    ("environments:\n  noop: {kind: image, image_uri: 'img; rm -rf ~'}\n",
     "must be an image reference"),
    ("environments:\n  noop: {kind: image, image_uri: '$(id)'}\n", "must be an image reference"),
    ("environments:\n  noop: {kind: image, image_uri: 'a b'}\n", "must be an image reference"),
    ("environments:\n  noop: {variant: '../x'}\n", "'environments.noop.variant': must be a name"),
    ("environments:\n  noop: {packages: [\"vllm\\nrm\"]}\n", "each package must be text"),
])
def test_refused_at_load_time(body: str, want: str) -> None:
    assert want in error_of(body)


@pytest.mark.parametrize("uri", ["reg/llem-vllm:1", "rayproject/ray:2.60.0-py311-gpu",
                                 "ghcr.io/org/img@sha256:" + "a" * 64, "localhost:5000/x:y"])
def test_image_references_pass(uri: str) -> None:
    assert EnvChoice(kind="image", image_uri=uri).image_uri == uri


@pytest.mark.parametrize("model", ["meta-llam\u0430/Llama-3.2-1B", "org/na\u200bme",
                                   "org/name/extra", "org/bad--name", "org/x.git", "-org/x",
                                   "org/x-", "a b", "org/" + "x" * 97])
def test_model_ids_the_hub_would_refuse(model: str) -> None:
    msg = error_of("", head=f"name: t\nmodels: ['{model}']\nbackends: [noop, transformers]\n")
    assert ":2: 'models.0': model " in msg and "is not a hub id" in msg, msg
    # a backend that loads nothing from the hub takes any name (noop: a label; endpoint:
    # the name its server serves the model under, e.g. llama3:8b)
    load_text(f"name: t\nmodels: ['{model}']\nbackends: [noop]\n", "g.yaml")


HUB_IDS = ["gpt2", "org/model", "meta-llama/Llama-3.1-8B", "a", "org/" + "x" * 96, "x_y.z",
           "org/x.git", "a--b", "a..b", "-a", "a-", ".a", "a.", "_a", "a/b/c", "org/",
           "/x", "a b", "org/" + "x" * 97, "x" * 96 + "/y"]


@pytest.mark.parametrize("repo_id", HUB_IDS)
def test_the_fallback_rule_is_the_hub_library_rule(repo_id: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with_library = hub_id_problem(repo_id) is None
    monkeypatch.setitem(__import__("sys").modules, "huggingface_hub.utils", None)
    assert (hub_id_problem(repo_id) is None) == with_library, repo_id
    assert load_mod.HUB_ID is not None
