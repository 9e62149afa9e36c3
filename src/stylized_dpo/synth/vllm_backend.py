"""The `vllm` generator backend: offline batched `LLM.chat` (the paper used Gemma 3 12B in vLLM).

vllm is imported only when this backend runs; it lives in its own environment (envs/vllm.yaml).
Each request's length is `check`ed against the engine's context before it is sent: vLLM rejects
an over-long prompt by aborting the whole `LLM.chat` call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from stylized_dpo.synth.generator import (
    Completion,
    Request,
    RowFailure,
    SynthError,
    merge_system,
    render_chat,
)

if TYPE_CHECKING:
    from stylized_dpo.synth.backends import SynthConfig


def vllm_engine_kwargs(cfg: SynthConfig) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM(...)`."""
    kwargs: dict[str, Any] = {
        "model": cfg.model,
        "tensor_parallel_size": cfg.vllm.tensor_parallel_size,
        "gpu_memory_utilization": cfg.vllm.gpu_memory_utilization,
        "dtype": cfg.vllm.dtype,
        "seed": cfg.seed,
    }
    if cfg.vllm.max_model_len is not None:
        kwargs["max_model_len"] = cfg.vllm.max_model_len
    return kwargs


def vllm_sampling_kwargs(cfg: SynthConfig, request: Request) -> dict[str, Any]:
    """Keyword arguments of one request's `vllm.SamplingParams(...)`."""
    return {
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_tokens": cfg.max_new_tokens,
        "seed": request.seed,
    }


def prompt_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    """Tokens of the rendered prompt, as vLLM counts them (the template writes any BOS)."""
    return len(tokenizer(render_chat(tokenizer, messages), add_special_tokens=False)["input_ids"])


def context_skips(
    tokenizer: Any, requests: list[Request], max_model_len: int, max_new_tokens: int
) -> dict[str, str]:
    """Request key -> why it is not sent: its prompt plus `max_new_tokens` exceeds the context."""
    skips = {}
    for r in requests:
        n = prompt_tokens(tokenizer, r.messages)
        if n + max_new_tokens > max_model_len:
            skips[r.key] = (
                f"over_context: prompt {n} + max_new_tokens {max_new_tokens} tokens > "
                f"max_model_len {max_model_len}"
            )
    return skips


class VLLMBackend:
    """Offline batched generation with vllm's `LLM.chat` (one SamplingParams per request).

    Requests are sent as `render_chat` renders them (a system message merged into the first
    user turn where the template has no system role), after `check` has set aside those longer
    than the engine's context. Should a call still fail, it is split in halves down to the row
    that fails, which becomes a `RowFailure`: vLLM aborts the whole call for one bad request.
    """

    name = "vllm"
    whole_batches = False

    def __init__(self, cfg: SynthConfig):
        self.cfg = cfg
        self._llm: Any = None
        self._vllm: Any = None

    def _engine(self) -> Any:
        if self._llm is None:
            try:
                import vllm
            except ImportError as e:
                raise SynthError(
                    "synth.backend 'vllm' needs the vllm package: run in the vllm environment "
                    "(envs/vllm.yaml, or `pip install .[vllm]` on a GPU machine)"
                ) from e
            self._vllm = vllm
            self._llm = vllm.LLM(**vllm_engine_kwargs(self.cfg))
        return self._llm

    def max_model_len(self) -> int:
        if self.cfg.vllm.max_model_len is not None:
            return self.cfg.vllm.max_model_len
        return int(self._engine().llm_engine.model_config.max_model_len)

    def _messages(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        try:
            self._engine().get_tokenizer().apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return messages
        except Exception:  # noqa: BLE001 - a template without a system role
            return merge_system(messages)

    def check(self, requests: list[Request]) -> dict[str, str]:
        """Request key -> skip reason, for requests that cannot fit the engine's context."""
        tokenizer = self._engine().get_tokenizer()
        return context_skips(tokenizer, requests, self.max_model_len(), self.cfg.max_new_tokens)

    def stream(self, requests: list[Request]) -> Iterator[tuple[int, Completion | RowFailure]]:
        self._engine()
        if requests:
            yield from self._chat(list(enumerate(requests)))

    def _chat(
        self, indexed: list[tuple[int, Request]]
    ) -> Iterator[tuple[int, Completion | RowFailure]]:
        llm = self._engine()
        params = [
            self._vllm.SamplingParams(**vllm_sampling_kwargs(self.cfg, r)) for _, r in indexed
        ]
        try:
            outputs = llm.chat(
                [self._messages(r.messages) for _, r in indexed], params, use_tqdm=False
            )
        except Exception as e:  # noqa: BLE001 - one bad request aborts vLLM's whole call
            if len(indexed) == 1:
                yield indexed[0][0], RowFailure("error", f"{type(e).__name__}: {e}"[:500])
                return
            half = len(indexed) // 2
            yield from self._chat(indexed[:half])
            yield from self._chat(indexed[half:])
            return
        if len(outputs) != len(indexed):
            raise SynthError(f"vllm returned {len(outputs)} outputs for {len(indexed)} requests")
        for (i, _), o in zip(indexed, outputs, strict=True):
            best = o.outputs[0]
            yield i, Completion(best.text, best.finish_reason or "stop")

    def generate(self, requests: list[Request]) -> list[Completion]:
        out: list[Any] = [None] * len(requests)
        for i, result in self.stream(requests):
            if isinstance(result, RowFailure):
                raise SynthError(f"request {requests[i].key}: {result.message}", result.reason)
            out[i] = result
        return out
