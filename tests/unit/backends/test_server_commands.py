"""Server mode's command builders (pure functions) and the endpoint backend's settings.

The transformers mapping is also checked against the installed `transformers serve` CLI
itself: its own parser reads the argv llem builds. vLLM's parser does the same in the vLLM
environment (tests/integration/test_server_vllm.py); TensorRT-LLM cannot be installed here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from llem.backends import REGISTRY, ServerCommand, get_info, load_class, server_of
from llem.backends.base import GenerateSpec, LoadSpec
from llem.backends.endpoint.settings import check_options, settings
from llem.backends.tensorrt import server as trt
from llem.backends.transformers import server as hf
from llem.backends.vllm import server as vl
from llem.errors import UserError

BASE = {"dtype": "float32", "port": 8123, "host": "127.0.0.1", "python": "/env/bin/python"}


def test_every_launched_backend_has_a_command_and_health_path() -> None:
    launched = {n for n, i in REGISTRY.items() if i.server and
                hasattr(server_of(n), "command")}
    assert launched == {"transformers", "vllm", "tensorrt"}
    for name in launched:
        cmd = server_of(name).command("/models/m", engine={}, **BASE)  # type: ignore[union-attr]
        assert isinstance(cmd, ServerCommand) and cmd.health_path == "/health"
        assert cmd.argv[0] == "/env/bin/python" and cmd.served_model == "/models/m"
    assert server_of("noop") is None


# --- vLLM ---------------------------------------------------------------------------------

def test_vllm_command_layout() -> None:
    cmd = vl.command("/models/m", engine={}, **BASE)
    assert cmd.argv == ["/env/bin/python", "-m", "vllm.entrypoints.openai.api_server",
                        "--model", "/models/m", "--host", "127.0.0.1", "--port", "8123",
                        "--dtype", "float32"]
    assert cmd.env == {} and cmd.files == {}


def test_vllm_flag_mapping() -> None:
    flags = vl.engine_flags({
        "enforce_eager": True, "enable_prefix_caching": False, "disable_log_stats": False,
        "max_num_seqs": 8, "gpu_memory_utilization": 0.5, "served_model_name": ["a", "b"],
        "cudagraph_capture_sizes": (1, 2), "compilation_config": {"mode": 0},
        "kv_cache_dtype": None, "model": "ignored"})
    assert flags == ["--enforce-eager", "--no-enable-prefix-caching",
                     "--max-num-seqs", "8", "--gpu-memory-utilization", "0.5",
                     "--served-model-name", "a", "b", "--cudagraph-capture-sizes", "1", "2",
                     "--compilation-config", '{"mode": 0}']
    assert vl.engine_flags({"disable_log_stats": True}) == ["--disable-log-stats"]
    assert vl.engine_flags({"lora_modules": [{"name": "x", "path": "/p"}]}) == [
        "--lora-modules", '{"name": "x", "path": "/p"}']


def test_vllm_defaults_gpus_and_what_engine_overrides() -> None:
    cmd = vl.command("/m", engine={"dtype": "bfloat16"}, gpus=2, **BASE)
    assert cmd.argv.count("--dtype") == 1 and cmd.argv[cmd.argv.index("--dtype") + 1] == \
        "bfloat16"
    assert cmd.argv[-4:] == ["--tensor-parallel-size", "2", "--distributed-executor-backend",
                             "mp"]
    one = vl.command("/m", engine={"tensor_parallel_size": 1}, gpus=1, **BASE).argv
    assert one[one.index("--tensor-parallel-size") + 1] == "1"
    assert "--distributed-executor-backend" not in one
    assert vl.command("/m", engine={"served_model_name": ["short"]}, **BASE).served_model == \
        "short"


@pytest.mark.parametrize("engine, word", [({"port": 1}, "launcher"), ({"host": "x"}, "launcher"),
                                          ({"served_model_name": []}, "empty list")])
def test_vllm_refuses(engine: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        vl.command("/m", engine=engine, **BASE)


# --- transformers -------------------------------------------------------------------------

def test_transformers_command_layout() -> None:
    cmd = hf.command("/models/m", engine={}, **BASE)
    assert cmd.argv == ["/env/bin/python", "-m", "transformers.cli.transformers", "serve",
                        "/models/m", "--host", "127.0.0.1", "--port", "8123",
                        "--dtype", "float32", "--continuous-batching"]
    assert cmd.env == {"HF_HUB_DISABLE_UPDATE_CHECK": "1"}


def test_transformers_mapping() -> None:
    opts = hf.serve_options({"torch_compile": True, "quantization": "4bit",
                             "attn_implementation": "sdpa", "trust_remote_code": False,
                             "continuous_batching": False, "cb_num_blocks": 64,
                             "chat_template_kwargs": {"enable_thinking": False}})
    assert hf.option_flags(opts) == [
        "--no-continuous-batching", "--compile", "--quantization", "bnb-4bit",
        "--attn-implementation", "sdpa", "--no-trust-remote-code", "--cb-num-blocks", "64",
        "--chat-template-kwargs", '{"enable_thinking": false}']
    assert hf.serve_options({"quantization": {"load_in_8bit": True}})["quantization"] == \
        "bnb-8bit"


@pytest.mark.parametrize("engine, word", [
    ({"adapter": "./lora"}, "no option for 'adapter'"),
    ({"assistant_model": "x"}, "no option for 'assistant_model'"),
    ({"low_cpu_mem_usage": True}, "no option for 'low_cpu_mem_usage'"),
    ({"torch_compile": {"mode": "max-autotune"}}, "only --compile"),
    ({"quantization": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}}, "bnb_4bit_quant"),
    ({"port": 1}, "launcher"),
])
def test_transformers_refuses_what_serve_cannot_do(engine: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        hf.command("/m", engine=engine, **BASE)


def test_transformers_argv_parses_with_the_installed_cli() -> None:
    """transformers' own typer CLI reads llem's argv (no server is started)."""
    cmd = hf.command("/models/m", engine={"torch_compile": False, "quantization": "8bit",
                                          "cb_max_memory_percent": 0.5, "trust_remote_code": True,
                                          "chat_template_kwargs": {"a": 1}, "default_seed": 7},
                     **BASE)
    script = (
        "import json, sys\n"
        "from transformers.cli.transformers import app\n"
        "serve = app.commands['serve']  # a click Group (huggingface_hub's typer_factory)\n"
        "ctx = serve.make_context('serve', sys.argv[1:])\n"
        "names = sorted(p.name for p in serve.params)\n"
        "print(json.dumps({'params': ctx.params, 'names': names}, default=str))\n")
    proc = subprocess.run([sys.executable, "-c", script, *cmd.argv[4:]], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    p = out["params"]
    assert (p["force_model"], p["host"], p["port"], p["dtype"]) == ("/models/m", "127.0.0.1",
                                                                    8123, "float32")
    assert p["continuous_batching"] is True and p["compile"] is False
    assert p["quantization"] == "bnb-8bit" and p["cb_max_memory_percent"] == 0.5
    assert p["trust_remote_code"] is True and p["default_seed"] == 7
    assert json.loads(p["chat_template_kwargs"]) == {"a": 1}
    # SERVE_OPTIONS is the installed CLI's options, less what the launcher sets
    assert set(out["names"]) - {"host", "port", "force_model"} - {
        "format", "json", "quiet", "no_truncate"} == set(hf.SERVE_OPTIONS)


# --- TensorRT-LLM (never run: the argv and the options file only) --------------------------

def test_tensorrt_command_and_options_file() -> None:
    cmd = trt.command("/models/m", engine={"max_batch_size": 16,
                                           "kv_cache_config": {"free_gpu_memory_fraction": 0.8}},
                      gpus=2, workdir="/store/logs", **BASE)
    path = "/store/logs/trtllm-serve-8123.yml"
    assert cmd.argv == ["/env/bin/python", "-c", trt.ENTRY, "/models/m", "--host", "127.0.0.1",
                        "--port", "8123", "--backend", "pytorch",
                        "--extra_llm_api_options", path]
    assert json.loads(cmd.files[path]) == {
        "dtype": "float32", "tensor_parallel_size": 2, "max_batch_size": 16,
        "kv_cache_config": {"free_gpu_memory_fraction": 0.8}}


def test_tensorrt_backend_and_build() -> None:
    cmd = trt.command("/m", engine={"backend": "trt", "build": {"max_batch_size": 8},
                                    "dtype": "bfloat16", "model": "x"}, **BASE)
    assert cmd.argv[cmd.argv.index("--backend") + 1] == "tensorrt"
    (text,) = cmd.files.values()
    assert json.loads(text) == {"dtype": "bfloat16", "build_config": {"max_batch_size": 8}}
    with pytest.raises(ValueError, match="builds none"):
        trt.command("/m", engine={"build": {"max_batch_size": 8}}, **BASE)
    with pytest.raises(ValueError, match="--backend"):
        trt.command("/m", engine={"backend": "cpp"}, **BASE)
    with pytest.raises(ValueError, match="launcher"):
        trt.command("/m", engine={"port": 1}, **BASE)


# --- endpoint -----------------------------------------------------------------------------

def test_endpoint_registry_entry() -> None:
    info = get_info("endpoint")
    assert info.needs_model and info.streaming and info.package is None
    assert not hasattr(server_of("endpoint"), "command")  # nothing is launched


def test_endpoint_settings_normalise_the_url() -> None:
    for url in ("http://10.0.0.5:8000", "http://10.0.0.5:8000/", "http://10.0.0.5:8000/v1",
                "http://10.0.0.5:8000/v1/"):
        s = settings("org/model", {"base_url": url})
        assert s.base_url == "http://10.0.0.5:8000" and s.model == "org/model"
    s = settings("m", {"base_url": "https://h/prefix/v1", "api_key_env": "MY_KEY"})
    assert s.models_url == "https://h/prefix/v1/models"
    assert s.as_row() == {"base_url": "https://h/prefix", "model": "m", "api_key_env": "MY_KEY"}


@pytest.mark.parametrize("engine, key", [
    ({}, "base_url"), ({"base_url": "ftp://h"}, "base_url"), ({"base_url": "http://"}, "base_url"),
    ({"base_url": "http://user:pw@h:1"}, "base_url"), ({"base_url": "http://h?k=v"}, "base_url"),
    # a port no server can have (99999 was accepted, and every request failed after Ray)
    *[({"base_url": u}, "base_url") for u in ("http://h:99999", "http://h:0", "http://h:",
                                               "http://h:port", "https://[::1]:70000/v1")],
    ({"base_url": "http://h", "api_key": "x"}, "api_key"),
    ({"base_url": "http://h", "api_key_env": "sk-abcdefghijklmnopqrstuvwxyz"}, "api_key_env"),
    ({"base_url": "http://h", "api_key_env": "not a name"}, "api_key_env"),
    # another service's credential would be sent to base_url as the bearer key
    *[({"base_url": "http://h", "api_key_env": n}, "api_key_env") for n in (
        "AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "GITHUB_TOKEN",
        "GH_TOKEN", "WANDB_API_KEY", "NGC_API_KEY", "AZURE_STORAGE_KEY", "GOOGLE_API_KEY",
        "ANTHROPIC_API_KEY", "DATABASE_PASSWORD", "aws_session_token")],
])
def test_endpoint_checks(engine: dict, key: str) -> None:
    problem = check_options(engine, gpus=0, batch_size=1, streaming=True)
    assert problem is not None and problem[0] == key
    with pytest.raises(UserError) as err:
        settings("m", engine)
    assert "sk-abc" not in str(err.value) and "pw" not in str(err.value)
    assert check_options({"base_url": "http://h:1"}, gpus=0, batch_size=1, streaming=True) is None
    for own in ("OPENAI_API_KEY", "MY_ENDPOINT_KEY", "VLLM_API_KEY"):  # a server's own key
        assert check_options({"base_url": "http://h:1", "api_key_env": own}, gpus=0,
                             batch_size=1, streaming=True) is None


def test_endpoint_key_is_read_by_name_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    from llem.credentials import redact

    s = settings("m", {"base_url": "http://h", "api_key_env": "LLEM_TEST_ENDPOINT_KEY"})
    with pytest.raises(UserError, match="LLEM_TEST_ENDPOINT_KEY"):
        s.api_key()
    monkeypatch.setenv("LLEM_TEST_ENDPOINT_KEY", "a-long-endpoint-key-1234")
    assert s.headers() == {"Authorization": "Bearer a-long-endpoint-key-1234"}
    assert "a-long-endpoint-key" not in repr(s) + json.dumps(s.as_row())
    assert redact("auth a-long-endpoint-key-1234 failed") == "auth *** failed"
    assert settings("m", {"base_url": "http://h"}).headers() == {}


def test_endpoint_backend_runs_in_server_mode_only() -> None:
    backend = load_class("endpoint")(LoadSpec(model="m", dtype="auto",
                                              engine={"base_url": "http://h:9"}))
    assert backend.reloads_in_process
    with pytest.raises(UserError, match="server mode only"):
        backend.generate(["x"], GenerateSpec(max_new_tokens=1))
    backend.close()


def test_server_modules_import_no_library() -> None:
    script = ("import sys\n"
              "import llem.backends.endpoint.settings, llem.backends.vllm.server\n"
              "import llem.backends.transformers.server, llem.backends.tensorrt.server\n"
              "heavy = {'torch', 'transformers', 'vllm', 'tensorrt_llm', 'aiohttp', 'openai',"
              " 'httpx', 'requests'}\n"
              "print(sorted(heavy & set(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
