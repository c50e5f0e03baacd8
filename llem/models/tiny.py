"""Build a random-weight Llama model with a locally trained tokenizer, fully offline.

No PyPI package ships a real small causal LM and these machines cannot reach a model hub,
so demos and tests use this. With the default init std of 0.02 greedy decoding repeats one
token (a parity or streaming test would then pass trivially); ~0.2 makes outputs vary.
head_dim stays >= 64 because vLLM's CPU attention rejects smaller heads.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llem.models.shape import shape_of
from llem.models.tiny_limits import (
    GPU_INIT_PARAMS,
    billions,
    memory_problem,
    params_of,
    too_many,
)
from llem.prompts.files import load_builtin

SPECIALS = ["<s>", "</s>", "<unk>", "<pad>"]
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json")


def is_complete(path: Path) -> bool:
    """True when path holds a finished build (the files are only ever moved in together)."""
    return all((path / f).is_file() for f in REQUIRED)


def build_tiny_model(out_dir: Path, *, seed: int = 0, vocab_size: int = 2048,
                     hidden_size: int = 128, num_layers: int = 2, num_heads: int = 2,
                     intermediate_size: int = 256, max_position_embeddings: int = 2048,
                     init_std: float = 0.2, dtype: str = "float32",
                     force: bool = False) -> Path:
    """Build (or reuse) the model in out_dir; byte-identical for a seed. Returns out_dir.

    The vocabulary is at most vocab_size: the builtin prompts may not fill a large one.
    dtype is what the weights are saved as: bfloat16 halves a large model's disk and load
    time. A model over 1B parameters is initialised on the GPU when one is visible (a 7B
    fp32 init on a CPU takes minutes); the weights are then seeded per device kind.
    """
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"dtype {dtype!r}: use float32, bfloat16 or float16")
    out_dir = Path(out_dir).expanduser().resolve()
    head_dim, rest = divmod(hidden_size, max(num_heads, 1))
    if num_heads < 1 or rest or head_dim < 64 or head_dim % 2:
        raise ValueError(f"head_dim = hidden_size / num_heads = {hidden_size}/{num_heads} "
                         "must be a whole, even number >= 64 (vLLM's CPU attention, RoPE)")
    if vocab_size < 300:
        raise ValueError(f"vocab_size {vocab_size} is too small for a byte-level BPE (>= 300)")
    params = params_of(vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers,
                       num_heads=num_heads, intermediate_size=intermediate_size)
    if problem := too_many(params):
        raise ValueError(problem)
    if is_complete(out_dir) and not force:
        return out_dir
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "config.json").exists():
        raise ValueError(f"{out_dir} is not empty and holds no model; refusing to replace it")
    if problem := memory_problem(params, dtype, on_gpu=params > GPU_INIT_PARAMS):
        raise ValueError(problem)
    made = [p for p in out_dir.parents if not p.exists()]  # removed again on a failure
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _locked(out_dir.parent / f".{out_dir.name}.lock"):  # concurrent workers build once
            if is_complete(out_dir) and not force:
                return out_dir
            tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.build.", dir=out_dir.parent))
            try:
                tmp.chmod(0o755)  # mkdtemp makes 0700; other users/containers read models
                _build(tmp, seed=seed, vocab_size=vocab_size, hidden_size=hidden_size,
                       num_layers=num_layers, num_heads=num_heads,
                       intermediate_size=intermediate_size,
                       max_position_embeddings=max_position_embeddings, init_std=init_std,
                       dtype=dtype)
                _swap_in(tmp, out_dir)
            except (MemoryError, RuntimeError) as exc:  # torch's allocators raise RuntimeError
                if not isinstance(exc, MemoryError) and not _out_of_memory(exc):
                    raise
                said = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
                raise ValueError(f"ran out of memory building {billions(params)} parameters "
                                 f"({said}): use smaller sizes, or free memory") from None
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        for folder in made:  # nearest first; one that holds something else stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return out_dir


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on path, which is removed when done (a failed build leaves no
    lock file): a waiter that got the lock of a file removed meanwhile takes the new one."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                here = path.stat()
            except FileNotFoundError:
                continue
            mine = os.fstat(fd)
            if (here.st_dev, here.st_ino) != (mine.st_dev, mine.st_ino):
                continue
            try:
                yield
            finally:
                path.unlink(missing_ok=True)
            return
        finally:
            os.close(fd)


def _out_of_memory(exc: BaseException) -> bool:
    """A torch allocator's failure (CPU: "can't allocate memory"; CUDA: OutOfMemoryError)."""
    text = str(exc).lower()
    return "allocate" in text or "out of memory" in text


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Move the finished build into place; an old model is moved aside first, then removed."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        os.replace(out_dir, old / "model")
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _train_tokenizer(vocab_size: int, max_length: int) -> Any:
    """Byte-level BPE on the builtin prompts: any text encodes, nothing is downloaded."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast


    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    raw.train_from_iterator([p.text for p in load_builtin()], trainer=trainer)
    bos = raw.token_to_id("<s>")
    # Prepend <s> like Llama tokenizers do; batches then start with the same token.
    raw.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>", padding_side="left",
                                   model_max_length=max_length)


def _build(tmp: Path, *, seed: int, vocab_size: int, hidden_size: int, num_layers: int,
           num_heads: int, intermediate_size: int, max_position_embeddings: int,
           init_std: float, dtype: str) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _train_tokenizer(vocab_size, max_position_embeddings)
    tok.save_pretrained(tmp)
    # transformers 5 writes its own class name; this one also loads under 4.x (vLLM pins).
    cfg_path = tmp / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size,
                         intermediate_size=intermediate_size,
                         num_hidden_layers=num_layers, num_attention_heads=num_heads,
                         num_key_value_heads=num_heads,
                         max_position_embeddings=max_position_embeddings,
                         initializer_range=init_std, tie_word_embeddings=False,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)

    params = shape_of(config.to_dict()).params()
    device = "cuda" if params > GPU_INIT_PARAMS and torch.cuda.is_available() else "cpu"
    if device == "cpu" and (problem := memory_problem(params, dtype)):
        raise ValueError(problem)
    gpus = [torch.cuda.current_device()] if device == "cuda" else []
    with torch.random.fork_rng(devices=gpus):  # seed the weights, the caller's RNG untouched
        torch.manual_seed(seed)
        with torch.device(device):
            model = LlamaForCausalLM(config).float()  # float32 even under a bf16 default
        model = model.to(getattr(torch, dtype))
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(tmp, safe_serialization=True)
    if device == "cuda":
        del model
        torch.cuda.empty_cache()  # the caller (a worker) loads the model next, measured
