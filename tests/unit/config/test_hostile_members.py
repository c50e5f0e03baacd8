"""More members of the hostile-input families (issue 18): credential shapes beyond hf_/sk-/
AKIA (and glued to text by '_'), URL passwords, include/exclude values of the wrong type,
numbers YAML 1.1 reads otherwise than they look (octal, base 60), keys that are not text,
and two groups that set one parameter when crossed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from llem.config.checks import check_datasets
from llem.config.grid import count_points
from llem.credentials import mask_shapes, redact, secret_env_name, token_shaped
from llem.errors import UserError
from tests.support.grids import HEAD, error_of, load

SHAPES = [
    "hf_PlantedTokenDoNotLeak0123456789abcd_x",  # glued by '_' on either side
    "x_hf_PlantedTokenDoNotLeak0123456789abcd",
    "ghp_PlantedTok0123456789abcdefghijABCDEFGHIJ",
    "github_pat_11PlantedTok0123456789_abcdefghijABCDEFGHIJklmnop",
    "glpat-PlantedTok0123456789ab",
    "xoxb-123456789012-PlantedTokabcdefghij",
    "ASIAPLANTEDTOK012345",
    "AIzaPlantedTok0123456789abcdefghijklmno",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJQbGFudGVkIn0.PlantedTokSignature0123",
    "-----BEGIN RSA PRIVATE KEY-----",
    "s3://AKIDPLANTED:PlantedTokSecret@bucket/x",
    "https://user:PlantedTokPass@host/ds",
    # round four: credentials in a URL's query, and HTTP authorization values
    "https://host/x.jsonl?token=PlantedTok1234567890",
    "https://b.s3.amazonaws.com/x?X-Amz-Credential=A%2F1&X-Amz-Signature=PlantedTokabcdef",
    "az://c/x?sv=2020&sig=PlantedTokSig0123%3D&se=1",
    "s3://b/x?access_key=AKIDX&secret_key=PlantedTokSecret0123",
    "Bearer PlantedTokBearer0123456789",
    "Basic PlantedTokBasicdXNlcjpwYXNz=",
]


@pytest.mark.parametrize("text", SHAPES)
def test_more_token_shapes_are_refused_and_masked(text: str) -> None:
    msg = error_of(f"grid:\n  generate.note: '{text}'\n")
    assert ":5: 'grid.generate.note': looks like a credential" in msg, msg
    assert "PlantedTok" not in msg
    assert token_shaped(text) and "PlantedTok" not in mask_shapes(text)
    assert "PlantedTok" not in redact(f"error: cannot open {text}")


def test_a_url_keeps_what_is_not_its_password() -> None:
    assert mask_shapes("s3://KEY:SECRET@bucket/x") == "s3://KEY:***@bucket/x"
    for plain in ("http://host:8000/v1", "s3://bucket/x", "pad_token", "user@host",
                  "https://h/v1?model=x&limit=3", "a?monkey=1&keyword=2", "Bearer of news"):
        assert not token_shaped(plain), plain


@pytest.mark.parametrize("body", [
    "store: 's3://KEY:PlantedTokSecret@bucket/x'\n",
    "dataset: {source: hf, path: 'https://u:PlantedTokPass@host/ds'}\n",
    "grid:\n  generate.client_secret: PlantedTok\n",
    "grid:\n  generate.private_key: PlantedTok\n",
    "grid:\n  generate.headers: {Authorization: 'Bearer PlantedTok'}\n",
    "noop:\n  connection_string: PlantedTok\n",
])
def test_credentials_by_name_or_url_are_refused(body: str) -> None:
    msg = error_of(body)
    assert "looks like a credential" in msg and "PlantedTok" not in msg, msg


@pytest.mark.parametrize("name", ["AZURE_STORAGE_CONNECTION_STRING", "HF_AUTH", "DB_PASS"])
def test_more_credential_variable_names(name: str) -> None:
    assert secret_env_name(name)
    assert "a credential variable" in error_of(f"environments:\n  noop:\n    env_vars:\n"
                                               f"      {name}: x\n")


@pytest.mark.parametrize("name", ["PWD", "BYPASS_CACHE", "TOKENIZERS_PARALLELISM",
                                  "PASSTHROUGH"])
def test_names_that_only_resemble_one(name: str) -> None:
    assert not secret_env_name(name)


# --- include/exclude values are the parameter's own type -------------------------------------


@pytest.mark.parametrize(("body", "want"), [
    ("exclude:\n  - {batch_size: true}\n",  # true == 1 would drop batch_size 1
     ":7: 'exclude.0.batch_size': must be a whole number (got true"),
    ("exclude:\n  - {batch_size: '1'}\n",  # would match nothing
     ":7: 'exclude.0.batch_size': must be a whole number (got the text '1'"),
    ("include:\n  - {batch_size: [1, yes]}\n", ":7: 'include.0.batch_size': must be a whole"),
    ("exclude:\n  - {measurement: {sample_hz: fast}}\n", "'exclude.0.measurement.sample_hz':"),
    ("exclude:\n  - {dtype: float8}\n", "unknown dtype 'float8'"),
])
def test_rule_values_are_checked_like_the_parameter(body: str, want: str) -> None:
    msg = error_of("grid:\n  batch_size: [1, 2]\n" + body)
    assert want in msg, msg


def test_rules_tell_true_from_one() -> None:
    loaded = load("grid:\n  generate.x: [1, true]\nexclude:\n  - {generate.x: true}\n")
    assert count_points(loaded) == 1
    loaded = load("grid:\n  temperature: [1, 0.5]\nexclude:\n  - {temperature: 1.0}\n")
    assert count_points(loaded) == 1  # 1 and 1.0 are one number


# --- numbers that are not what they look like; keys that are not text -----------------------


@pytest.mark.parametrize(("body", "want"), [
    ("grid:\n  batch_size: 010\n", ":5: 'grid.batch_size': 010 is an octal number in YAML (8)"),
    ("grid:\n  seed: -0777\n", "-0777 is an octal number"),
    ("grid:\n  max_new_tokens: 1:30\n", "1:30 is a base-60 number in YAML (90)"),
    ("grid:\n  temperature: 1:30.5\n", "1:30.5 is a base-60 number in YAML (90.5)"),
    ("grid:\n  generate.when: 12:30\n", "12:30 is a base-60 number"),
    ("noop:\n  true: 1\n", ":5: 'noop': a key must be text or a whole number (got True"),
    ("noop:\n  on: 1\n", "a key must be text or a whole number (got True"),
    ("noop:\n  0.5: 1\n", "a key must be text or a whole number (got 0.5)"),
    ("noop:\n  \"a\\tb\": 1\n", "'noop.a\\tb': a key cannot hold control characters"),
    ("grid:\n  generate:\n    \"x\\e[31m\": 1\n", "a key cannot hold control characters"),
])
def test_yaml_surprises_are_refused(body: str, want: str) -> None:
    msg = error_of(body)
    assert want in msg, msg


def test_plain_numbers_and_explicit_ones_pass() -> None:
    loaded = load("cycles: 0x2\ngrid:\n  batch_size: !!int '010'\n  seed: 0\n"
                  "  temperature: 0.5\n  generate.note: '1:30'\n"
                  "  generate.logit_bias: {50256: -100}\n")
    assert loaded.campaign.cycles == 2  # 0x: a radix written out is no surprise
    assert loaded.fixed["batch_size"] == 8  # an explicit tag is what was asked for
    assert loaded.fixed["generate.note"] == "1:30"  # quoted: text
    assert loaded.fixed["generate.logit_bias.50256"] == -100  # token ids as keys


# --- two groups crossed that set one parameter --------------------------------------------


@pytest.mark.parametrize(("body", "want"), [
    ("grid:\n  g1: [{batch_size: 1}]\n  g2: [{batch_size: 2}]\n",
     ":6: 'grid.g2': 'batch_size' is also set by 'g1' on line 5"),
    ("grid:\n  batch_size: [1, 8]\n  variants: [{}, {batch_size: 64}]\n",
     ":6: 'grid.variants': 'batch_size' is also set by 'batch_size' on line 5"),
    ("grid:\n  measurement: [{sample_hz: 5}]\n  measurement.sample_hz: [6, 7]\n",
     "'measurement.sample_hz' is also set by 'measurement' on line 5"),
    ("grid:\n  quant: [{noop.x: 1}]\n  noop.x: [2, 3]\n", "'noop.x' is also set by 'quant'"),
])
def test_two_crossed_axes_may_not_set_one_path(body: str, want: str) -> None:
    msg = error_of(body)
    assert want in msg and "override the other silently" in msg, msg


# --- a prompt file is data: not a kernel file, not a credential file -------------------------


@pytest.mark.parametrize(("source", "path", "want"), [
    ("file", "/proc/self/environ", "is a kernel or device file"),  # the driver's credentials
    ("file", "/dev/zero", "is a kernel or device file"),
    ("file", "/sys/kernel/mm/transparent_hugepage/enabled", "is a kernel or device file"),
    ("hf", "/proc/self", "is a kernel or device file"),
    ("file", "secrets.env", "holds credentials: its text would be sent to the model"),
    ("file", "hf/token", "holds credentials"),
])
def test_a_prompt_file_is_data(source: str, path: str, want: str, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hf").mkdir()
    for f in ("secrets.env", "hf/token"):
        (tmp_path / f).write_text("HF_TOKEN=x\n")
    monkeypatch.setenv("LLEM_SECRETS_FILE", str(tmp_path / "secrets.env"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    where = path if path.startswith("/") else tmp_path / path
    loaded = load(f"dataset: {{source: {source}, path: {where}}}\n")
    with pytest.raises(UserError, match=f":4: 'dataset.path': .*{want}"):
        check_datasets(loaded)


def test_the_hub_libraries_retries_are_not_printed(monkeypatch: pytest.MonkeyPatch,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    """Offline, `datasets` retries the hub five times and its logger printed each retry on
    stderr before llem's one line (the real retries take 25 s here: logged the same way)."""
    import llem.config.checks as checks

    def offline(ds: object) -> None:
        logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 8s [Retry 5/5].")
        raise UserError("cannot load HF dataset 'org/ds'")

    monkeypatch.setattr(checks, "load_hf", offline)
    with pytest.raises(UserError, match=r":4: 'dataset\.path': cannot load HF dataset"):
        check_datasets(load("dataset: {source: hf, path: org/ds}\n"))
    assert "Retrying" not in capfd.readouterr().err
    assert logging.getLogger("huggingface_hub").level != logging.ERROR  # put back


@pytest.mark.parametrize(("packages", "want"), [
    ("['--index-url=http://example.invalid/']", "not a pip option (got '--index-url="),
    ("['-r /etc/passwd']", "not a pip option (got '-r'"),
    ("[numpy, ' -e ./src']", "not a pip option"),
    ("[]", "an empty list installs nothing"),
])
def test_packages_are_requirements_not_pip_options(packages: str, want: str) -> None:
    msg = error_of(f"environments:\n  noop: {{kind: pip, packages: {packages}}}\n")
    assert ":5: 'environments.noop.packages'" in msg and want in msg, msg


def test_requirements_pass() -> None:
    load("environments:\n  noop: {kind: pip, packages: [\"numpy>=1; os_name == 'posix'\", "
         "'git+https://example.invalid/x.git@v1', ./wheels/x.whl]}\n")


@pytest.mark.parametrize(("body", "want"), [
    ("grid:\n  b\u0430tch_size: 4\n", "'grid.b\\u0430tch_size': unknown parameter"),  # Cyrillic
    ("grid:\n  batch\u200b_size: 4\n", "'grid.batch\\u200b_size': unknown parameter"),
    ("n\u043eop: {x: 1}\n", "'n\\u043eop': unknown key (did you mean 'noop'?)"),
])
def test_a_key_that_looks_right_shows_why_it_is_not(body: str, want: str) -> None:
    msg = error_of(body)
    assert want in msg, msg


# --- resources Ray cannot carry: refused at load, not at the actor's creation ---------------


@pytest.mark.parametrize(("body", "want"), [
    ("resources: {cpus_per_job: 0.00001}\n",
     "'resources.cpus_per_job': cpus_per_job must be a multiple of 0.0001"),
    ("resources: {custom: {TPU: 0.00005}}\n", "custom resource 'TPU' must be a multiple"),
    ("resources: {custom: {GPU: 1}}\n", "'GPU' is a resource Ray sets itself"),
    ("resources: {custom: {memory: 1000}}\n", "'memory' is a resource Ray sets itself"),
    ("resources: {custom: {'accelerator_type:H100': 1}}\n", "is a resource Ray sets itself"),
])
def test_resources_ray_cannot_carry(body: str, want: str) -> None:
    msg = error_of(body)
    assert ":4: 'resources." in msg and want in msg, msg


def test_resources_ray_can_carry() -> None:
    load("resources: {cpus_per_job: 0.25, custom: {TPU: 0.0001, fast: 2}}\n")


@pytest.mark.parametrize(("body", "want"), [
    ("noop:\n  X: 1\n  x: 2\n", ":6: 'noop.x': engine arguments 'X' and 'x' differ only in case"),
    ("noop:\n  x: [1, 2]\nexperiments:\n  - {noop.X: 3}\n", "'experiments.0.noop.X': engine "
     "arguments 'x' and 'X'"),
])
def test_engine_keys_that_would_share_a_column(body: str, want: str) -> None:
    msg = error_of(body)
    assert want in msg and "engine_x" in msg, msg


def test_one_prompt_file_spelled_twice_is_one_choice() -> None:
    loaded = load("dataset: {source: file, path: [p.jsonl, ./p.jsonl, sub/../p.jsonl, q.jsonl]}\n")
    assert count_points(loaded) == 2


def test_two_merged_maps_that_set_one_key_differently() -> None:
    head = HEAD + "experiments:\n  - &a {batch_size: 1, max_new_tokens: 5}\n" \
        "  - &b {batch_size: 2}\n"
    msg = error_of("grid:\n  <<: [*a, *b]\n", head=head)
    assert ":8: 'grid.batch_size': two maps merged here both set 'batch_size' (lines 5 and 6)" \
        in msg, msg
    # the same value from both, or a value written here over both: no conflict
    load("grid:\n  <<: [*a, *a]\n", head=head)
    load("grid:\n  <<: [*a, *b]\n  batch_size: 4\n", head=head)


# --- one file spelled two ways in one axis (issue 18, round four) ----------------------------


def _prompts(tmp_path: Path) -> Path:
    d = tmp_path / "dir"
    d.mkdir()
    (d / "p.jsonl").write_text('{"prompt": "hello"}\n')
    (d / "q.jsonl").write_text('{"prompt": "other"}\n')
    (d / "link.jsonl").symlink_to("p.jsonl")
    return d


@pytest.mark.parametrize(("body", "want"), [
    ("dataset: {source: file, path: [p.jsonl, ../dir/p.jsonl]}\n",
     ":4: 'dataset.path.1': '../dir/p.jsonl' names the same file as 'p.jsonl' on line 4"),
    ("dataset: {source: file, path: [q.jsonl, link.jsonl, p.jsonl]}\n",
     ":4: 'dataset.path.2': 'p.jsonl' names the same file as 'link.jsonl' on line 4"),
    ("grid:\n  dataset:\n    - {source: file, path: p.jsonl}\n"
     "    - {source: file, path: ../dir/p.jsonl}\n",
     ":7: 'grid.dataset.1': '../dir/p.jsonl' names the same file as 'p.jsonl' on line 6"),
])
def test_one_file_spelled_two_ways_is_refused_naming_both(body: str, want: str,
                                                          tmp_path: Path) -> None:
    d = _prompts(tmp_path)
    with pytest.raises(UserError) as exc:
        load(body, base_dir=d)
    assert want in str(exc.value), str(exc.value)


def test_one_file_with_other_settings_and_two_files_pass(tmp_path: Path) -> None:
    d = _prompts(tmp_path)
    loaded = load("grid:\n  dataset:\n    - {source: file, path: p.jsonl, num_prompts: 1}\n"
                  "    - {source: file, path: ../dir/p.jsonl, num_prompts: 2}\n", base_dir=d)
    assert count_points(loaded) == 2
    # the paths are kept as written: the job ids of existing grids do not change
    written = load("dataset: {source: file, path: [p.jsonl, q.jsonl]}\n", base_dir=d)
    assert [ax.alternatives for ax in written.axes if "dataset.path" in ax.paths()] == \
        [({"dataset.path": "p.jsonl"}, {"dataset.path": "q.jsonl"})]


# --- a local model path a backend cannot load --------------------------------------------------


@pytest.mark.parametrize(("make", "want"), [
    ("file", "is a file, not a model folder"),
    ("empty", "holds no config.json: it is not a saved model"),
    ("fifo", "is not a folder (a pipe, device or socket)"),
])
def test_a_model_path_that_holds_no_model(make: str, want: str, tmp_path: Path) -> None:
    m = tmp_path / "m"
    {"file": lambda: m.write_text("x"), "empty": m.mkdir, "fifo": lambda: os.mkfifo(m)}[make]()
    head = "name: t\nmodels: [./m]\nbackends: [transformers]\n"
    with pytest.raises(UserError) as exc:
        load("", head=head, base_dir=tmp_path)
    assert f"grid.yaml:2: 'models.0': model path {m} {want}" in str(exc.value), str(exc.value)
    load("", head=head.replace("transformers", "noop"), base_dir=tmp_path)  # loads nothing


def test_model_folders_and_gguf_files_pass(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    (tmp_path / "q.gguf").write_bytes(b"GGUF")
    load("", head="name: t\nmodels: [./m, ./q.gguf]\nbackends: [transformers]\n",
         base_dir=tmp_path)
