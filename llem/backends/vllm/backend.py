"""vLLM through its own offline API (written against vLLM 0.32).

Non-streaming runs one offline batch with LLM.generate, as vLLM's offline throughput
benchmark does. Streaming drives llm.llm_engine (add_request + step) so that every token
is stamped when step() hands it back. vLLM is imported inside methods only: this module
is importable by the driver, which has no vLLM.
"""

from __future__ import annotations

import gc
import itertools
import time
from typing import TYPE_CHECKING, Any

from llem.backends.base import GenerateSpec, LoadSpec, RequestRecord

if TYPE_CHECKING:
    from vllm import LLM, RequestOutput, SamplingParams

_request_ids = itertools.count()


def _durations(stats: Any) -> dict[str, float]:
    """vLLM's own per-request timings (RequestStateStats) as durations in seconds.

    queued/scheduled/first_token/last_token are engine-core time.monotonic() stamps; 0.0
    means vLLM did not record one (e.g. disable_log_stats=True), so that duration is left
    out rather than invented. The intervals are those of vLLM's FinishedRequestStats.
    """
    if stats is None:
        return {}
    ts = {k: float(getattr(stats, f"{k}_ts", 0.0) or 0.0)
          for k in ("queued", "scheduled", "first_token", "last_token")}
    spans = {"queue_s": ("queued", "scheduled"),  # waiting for the scheduler
             "prefill_s": ("scheduled", "first_token"),
             "decode_s": ("first_token", "last_token"),
             "inference_s": ("scheduled", "last_token")}
    out = {name: ts[b] - ts[a] for name, (a, b) in spans.items() if ts[a] > 0 and ts[b] > 0}
    ttft = float(getattr(stats, "first_token_latency", 0.0) or 0.0)  # from arrival (wall)
    if ttft > 0:
        out["ttft_s"] = ttft
    n = int(getattr(stats, "num_generation_tokens", 0) or 0)
    if "decode_s" in out and n > 1:
        out["tpot_s"] = out["decode_s"] / (n - 1)  # vLLM's mean_time_per_output_token
    if hasattr(stats, "num_preemptions"):
        out["preemptions"] = float(stats.num_preemptions)
    return out


def engine_kwargs(spec: LoadSpec) -> dict[str, Any]:
    """LLM(...) arguments: the grid's engine args untouched, over llem's few defaults.

    With several GPUs the worker actor already holds them all, so vLLM's workers are its
    own processes on those GPUs ("mp"); left to itself, vLLM picks its Ray executor inside a
    placement group and would ask Ray for GPUs this actor has taken.
    """
    kwargs: dict[str, Any] = {"dtype": spec.dtype, "seed": spec.seed,
                              # stats on: fills RequestOutput.metrics (queue/prefill/...)
                              "disable_log_stats": False}
    if spec.gpus > 0:
        kwargs["tensor_parallel_size"] = spec.gpus
    if spec.gpus > 1:
        kwargs["distributed_executor_backend"] = "mp"
    kwargs.update(spec.engine)
    kwargs["model"] = spec.model  # the load key's model is the model, whatever engine says
    return kwargs


class VllmBackend:
    """One vllm.LLM. Engine args pass to LLM(...) untouched and win over our defaults."""
    reloads_in_process = False  # its engine may keep GPU memory: a fresh process per load

    def __init__(self, spec: LoadSpec) -> None:
        from vllm import LLM

        self.llm: LLM | None = LLM(**engine_kwargs(spec))

    def _engine(self) -> LLM:
        if self.llm is None:
            raise RuntimeError("VllmBackend is closed")
        return self.llm

    @staticmethod
    def _sampling(spec: GenerateSpec, output_kind: Any) -> SamplingParams:
        """GenerateSpec -> SamplingParams; spec.extra passes through and wins.

        top_k 0 is vLLM's own "disabled" value (0 or -1), so it maps as is; temperature 0
        is greedy in vLLM too. ignore_eos stays vLLM's default (False) unless extra sets it.
        """
        from vllm import SamplingParams

        kw: dict[str, Any] = {"temperature": spec.temperature, "top_p": spec.top_p,
                              "top_k": spec.top_k, "repetition_penalty": spec.repetition_penalty,
                              "min_tokens": spec.min_new_tokens,
                              "max_tokens": spec.max_new_tokens, "seed": spec.seed}
        kw.update(spec.extra)
        kw["output_kind"] = output_kind
        params = SamplingParams(**kw)
        if params.n != 1:
            raise ValueError("vllm backend: one completion per prompt (n must be 1)")
        return params

    @staticmethod
    def _tokenization(spec: GenerateSpec) -> dict[str, Any] | None:
        """Truncation by vLLM's own renderer (the engine's tokenizer).

        Keeps the FIRST max_input_tokens tokens (truncation_side="right"), special tokens
        such as BOS included, like HF truncation=True with max_length.
        """
        if spec.max_input_tokens is None:
            return None
        return {"truncate_prompt_tokens": spec.max_input_tokens, "truncation_side": "right"}

    def generate(self, prompts: list[str], spec: GenerateSpec) -> list[RequestRecord]:
        """One batch; streaming picks the per-token path (see _generate_streaming)."""
        if not prompts:
            return []
        if spec.streaming:
            return self._generate_streaming(prompts, spec)
        return self._generate_batch(prompts, spec)

    def _generate_batch(self, prompts: list[str], spec: GenerateSpec) -> list[RequestRecord]:
        """Offline batch through LLM.generate.

        vLLM returns only when the whole batch is done, so every request gets the batch
        window: start_s = call start, end_s = return. That is the latency an offline
        caller sees; vLLM's own per-request stamps are kept in metrics.
        """
        from vllm.sampling_params import RequestOutputKind

        llm = self._engine()
        params = self._sampling(spec, RequestOutputKind.FINAL_ONLY)
        start = time.perf_counter()
        outputs = llm.generate(prompts, params, use_tqdm=False,
                               tokenization_kwargs=self._tokenization(spec))
        end = time.perf_counter()
        return [self._record(o, start, end, None, o.outputs[0].text) for o in outputs]

    def _generate_streaming(self, prompts: list[str], spec: GenerateSpec) -> list[RequestRecord]:
        """All prompts added to llm.llm_engine at once, then step() until none is left.

        Each token is stamped with perf_counter() when the step() that delivered it
        returns. A step that delivers k tokens for a request (e.g. stream_interval > 1 or
        speculative decoding) gives k copies of that stamp: the arrival vLLM exposes.
        start_s is stamped just before add_request; end_s when the final output arrives.
        """
        from vllm.sampling_params import RequestOutputKind

        engine = self._engine().llm_engine
        params = self._sampling(spec, RequestOutputKind.DELTA)
        tok_kwargs = self._tokenization(spec)
        ids = [f"llem-{next(_request_ids)}" for _ in prompts]
        starts: dict[str, float] = {}
        stamps: dict[str, list[float]] = {rid: [] for rid in ids}
        texts: dict[str, list[str]] = {rid: [] for rid in ids}
        final: dict[str, tuple[float, RequestOutput]] = {}
        try:
            for rid, prompt in zip(ids, prompts, strict=True):
                starts[rid] = time.perf_counter()
                engine.add_request(rid, prompt, params, tokenization_kwargs=tok_kwargs)
            while len(final) < len(ids) and engine.has_unfinished_requests():
                outputs = engine.step()
                now = time.perf_counter()
                for out in outputs:
                    rid = out.request_id  # the id we gave (vLLM's external id)
                    if rid not in stamps:
                        continue
                    delta = out.outputs[0]
                    stamps[rid].extend([now] * len(delta.token_ids))
                    texts[rid].append(delta.text)
                    if out.finished:
                        final[rid] = (now, out)
        except BaseException:
            engine.abort_request([r for r in ids if r in starts and r not in final])
            raise
        missing = [r for r in ids if r not in final]
        if missing:
            raise RuntimeError(f"vllm engine stopped before finishing {missing}")
        return [self._record(final[r][1], starts[r], final[r][0], stamps[r], "".join(texts[r]),
                             output_tokens=len(stamps[r])) for r in ids]

    @staticmethod
    def _record(out: RequestOutput, start: float, end: float, token_times: list[float] | None,
                text: str, output_tokens: int | None = None) -> RequestRecord:
        n_out = len(out.outputs[0].token_ids) if output_tokens is None else output_tokens
        return RequestRecord(input_tokens=len(out.prompt_token_ids or []), output_tokens=n_out,
                             start_s=start, end_s=end, token_times_s=token_times,
                             metrics=_durations(out.metrics), text=text)

    def close(self) -> None:
        """Shut the engine core down (what vLLM 0.32 itself calls: it tears down the
        executor and the distributed state, or stops the engine process), then drop it."""
        llm, self.llm = self.llm, None
        if llm is None:
            return
        try:
            llm.llm_engine.engine_core.shutdown()
        finally:
            del llm
            gc.collect()
