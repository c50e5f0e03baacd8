"""HF transformers through its own API: from_pretrained + generate, with left padding.

Engine args go to from_pretrained untouched. Streaming uses a BaseStreamer that generate
calls once per decoding step with the new token of every row; its put() copies the tokens
to the host, which waits for the GPU, so each stamp is a true arrival time.
"""

from __future__ import annotations

import time
from typing import Any

from llem.backends.base import GenerateSpec, LoadSpec, RequestRecord
from llem.backends.transformers.options import apply_options, from_pretrained_kwargs, split_engine

TORCH_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


class _StepStamps:
    """A transformers streamer (duck-typed BaseStreamer) recording each step's tokens."""

    def __init__(self) -> None:
        self.prompt_seen = False
        self.steps: list[tuple[float, list[int]]] = []

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # generate() first puts the prompt ids
            self.prompt_seen = True
            return
        tokens = value.reshape(-1).tolist()  # host copy: waits for the device
        self.steps.append((time.perf_counter(), tokens))

    def end(self) -> None:
        pass


class TransformersBackend:
    """AutoModelForCausalLM on one device (or device_map='auto' across several GPUs)."""
    reloads_in_process = True  # close() drops the model and empties the CUDA cache

    def __init__(self, spec: LoadSpec) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        kwargs: dict[str, Any] = {}
        if spec.dtype != "auto":
            kwargs["dtype"] = getattr(torch, TORCH_DTYPES[spec.dtype])
        else:
            kwargs["dtype"] = "auto"
        if spec.gpus > 0:
            kwargs["device_map"] = "cuda" if spec.gpus == 1 else "auto"
        engine, opts = split_engine(spec.engine)
        kwargs.update(engine)  # engine args pass through and win
        kwargs.update(from_pretrained_kwargs(opts))
        self.tokenizer = AutoTokenizer.from_pretrained(spec.model, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(spec.model, **kwargs).eval()
        self.model.generation_config.pad_token_id = self.tokenizer.pad_token_id
        self.assistant_tokenizer: Any = None

        def load_assistant(path: str) -> Any:  # a llem:<name> was built by the harness
            self.assistant_tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
            return AutoModelForCausalLM.from_pretrained(path, **{
                k: v for k, v in kwargs.items() if k in ("dtype", "device_map")}).eval()

        self.model, self.assistant, self.load_facts = apply_options(self.model, opts,
                                                                    load_assistant)
        # plain dict of the loaded model's dimensions, for the FLOPs estimate (llem.models.flops)
        self.model_config = {k: v for k, v in self.model.config.to_dict().items()
                             if isinstance(v, int | float | str | bool | None)}
        self.eos = set(_ids(self.model.generation_config.eos_token_id) or
                       _ids(self.tokenizer.eos_token_id))

    def _kwargs(self, spec: GenerateSpec) -> dict[str, Any]:
        kw: dict[str, Any] = {"max_new_tokens": spec.max_new_tokens,
                              "min_new_tokens": spec.min_new_tokens or None,
                              "repetition_penalty": spec.repetition_penalty,
                              "pad_token_id": self.tokenizer.pad_token_id}
        if spec.temperature > 0:
            kw.update(do_sample=True, temperature=spec.temperature, top_p=spec.top_p,
                      top_k=spec.top_k or None)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if self.assistant is not None:
            kw["assistant_model"] = self.assistant
            if self.assistant.config.vocab_size != self.model.config.vocab_size:
                kw.update(tokenizer=self.tokenizer, assistant_tokenizer=self.assistant_tokenizer)
        kw.update(spec.extra)
        return {k: v for k, v in kw.items() if v is not None or k in ("temperature", "top_p",
                                                                       "top_k")}

    def generate(self, prompts: list[str], spec: GenerateSpec) -> list[RequestRecord]:
        torch = self.torch
        enc = self._encode(prompts, spec).to(self.model.device)
        in_lens = enc["attention_mask"].sum(dim=1).tolist()
        if spec.temperature > 0:
            torch.manual_seed(spec.seed)
        streamer = _StepStamps() if spec.streaming else None
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(**enc, **self._kwargs(spec), streamer=streamer)
        new = out[:, enc["input_ids"].shape[1]:].tolist()  # host copy: waits for the device
        end = time.perf_counter()
        records = []
        for row, (ids, n_in) in enumerate(zip(new, in_lens, strict=True)):
            n_out = self._length(ids)
            times = None
            if streamer is not None:
                times = [t for t, _ in streamer.steps[:n_out]]
                if len(times) != n_out:
                    raise RuntimeError(f"streamer saw {len(streamer.steps)} steps for row {row}"
                                       f" with {n_out} tokens")
            records.append(RequestRecord(input_tokens=int(n_in), output_tokens=n_out,
                                         start_s=start, end_s=times[-1] if times else end,
                                         token_times_s=times))
        return records

    def _encode(self, prompts: list[str], spec: GenerateSpec) -> Any:
        """Token ids, left padded; cut to max_input_tokens, and with input_policy pad each
        prompt extended to exactly that length by repeating its own tokens (BOS kept once)."""
        n = spec.max_input_tokens
        if spec.input_policy != "pad" or n is None:
            return self.tokenizer(prompts, return_tensors="pt", padding=True,
                                  truncation=n is not None, max_length=n)
        rows = self.tokenizer(prompts, truncation=True, max_length=n)["input_ids"]
        bos = self.tokenizer.bos_token_id
        full = []
        for ids in rows:
            head = ids[:1] if bos is not None and ids and ids[0] == bos else []
            body = ids[len(head):] or ids or [bos or 0]
            full.append((head + body * (n // len(body) + 1))[:n])
        return self.tokenizer.pad({"input_ids": full}, return_tensors="pt")

    def _length(self, ids: list[int]) -> int:
        """Generated tokens up to and including the first EOS (what was computed for it)."""
        for i, t in enumerate(ids):
            if t in self.eos:
                return i + 1
        return len(ids)

    def close(self) -> None:
        del self.model
        self.assistant = None
        if self.torch.cuda.is_available():
            self.torch.cuda.empty_cache()


def _ids(v: Any) -> list[int]:
    if v is None:
        return []
    return list(v) if isinstance(v, list | tuple) else [int(v)]
