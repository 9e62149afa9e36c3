"""Generator backends that rewrite chosen answers (config `synth.backend`).

- `rules`: the deterministic offline stand-in (synth/rules.py); no model.
- `vllm`: offline batched `LLM.chat` (the paper used Gemma 3 12B in vLLM). vllm is imported only
  when this backend runs; it lives in its own environment (envs/vllm.yaml).
- `openai`: any OpenAI-compatible chat-completions endpoint, bounded concurrency, retries with
  exponential backoff and full jitter on 429, 5xx, timeouts, connection errors and malformed
  bodies.
- `transformers`: a local chat model through `generate` (batched, left-padded).

Every backend maps a list of `Request`s to `Completion`s in the same order. Each request carries
its own seed, derived from the run seed and the row's cache key, so a row's output does not
depend on which other rows share its batch (vllm and openai honour per-request seeds;
transformers seeds each batch and `rewrite` keeps batches fixed across restarts).

A backend may also `stream` its results, row by row as they arrive, so that `rewrite` caches
each answered row at once; a row that fails on its own comes back as a `RowFailure` (counted,
never cached) instead of failing its batch. The vllm backend also `check`s each request's
length against the engine's context before sending it: vLLM rejects an over-long prompt by
aborting the whole `LLM.chat` call.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, ClassVar

from stylized_dpo.config import Section
from stylized_dpo.evals.api import ClientSettings, call_with_retries, make_client
from stylized_dpo.synth import rules

BACKENDS = ("rules", "vllm", "openai", "transformers")


@dataclass(frozen=True)
class VLLMSettings(Section):
    """`synth.vllm`: engine options of vllm.LLM."""

    section: ClassVar[str] = "synth.vllm"

    tensor_parallel_size: int = 1
    """GPUs one model is sharded over."""
    max_model_len: int | None = None
    """Context length the engine reserves memory for (None: the model's own)."""
    gpu_memory_utilization: float = 0.9
    """Share of GPU memory vLLM may take."""
    dtype: str = "auto"
    """Weights dtype (`auto`, `bfloat16`, ...)."""


@dataclass(frozen=True)
class OpenAISettings(ClientSettings, Section):
    """`synth.openai`: an OpenAI-compatible endpoint (fields: `evals.api.ClientSettings`; retries
    also cover malformed bodies)."""

    section: ClassVar[str] = "synth.openai"


@dataclass(frozen=True)
class TransformersSettings(Section):
    """`synth.transformers`: a local chat model."""

    section: ClassVar[str] = "synth.transformers"

    device: str = "auto"
    """`cpu`, `cuda`, or `auto` (cuda when available)."""
    dtype: str = "float32"
    """Weights dtype."""


@dataclass(frozen=True)
class SynthConfig(Section):
    """Config `synth` plus the run seed."""

    section: ClassVar[str] = "synth"
    label: ClassVar[str] = "synth"

    backend: str = "rules"
    """rules | vllm | openai | transformers."""
    model: str | None = None
    """Generator model (hub name or local path); None only for `rules`."""
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 1024
    seed: int = 0
    """Run seed; each row's seed derives from it and the row's key."""
    batch_size: int = 64
    """Rows per backend call; each answered row is appended to the cache as it arrives."""
    max_drop_fraction: float = 0.5
    """Fail, rather than write a much smaller set, when more rows than this are filtered out."""
    vllm: VLLMSettings = field(default_factory=VLLMSettings)
    openai: OpenAISettings = field(default_factory=OpenAISettings)
    transformers: TransformersSettings = field(default_factory=TransformersSettings)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"synth.backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend != "rules" and not self.model:
            raise ValueError(f"synth.backend {self.backend!r} needs synth.model")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("synth.batch_size and synth.max_new_tokens must be positive")

    @classmethod
    def from_config(cls, cfg: dict[str, Any], seed: int) -> SynthConfig:
        """The `synth` section with the run's seed."""
        return cls.from_dict({**cfg, "seed": seed})

    def sampling(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
        }

    def identity(self) -> dict[str, Any]:
        """Everything that changes a generated text (keys the cache)."""
        out: dict[str, Any] = {
            "backend": self.backend,
            "model": self.model,
            "sampling": self.sampling(),
            "seed": self.seed,
        }
        if self.backend == "vllm":
            out["dtype"] = self.vllm.dtype
        if self.backend == "transformers":
            out["dtype"] = self.transformers.dtype
            out["batch_size"] = self.batch_size  # batch composition changes sampled text
        return out


@dataclass(frozen=True)
class Request:
    """One rewrite: the chat messages plus what the `rules` backend needs."""

    key: str
    """Cache key of the row."""
    prompt_id: str
    """The pair's prompt_id (the `rules` backend picks its phrases by it)."""
    messages: list[dict[str, str]]
    """System + user messages built from the style file."""
    style: str
    answer: str
    """The original chosen answer."""
    seed: int
    """Per-row seed."""


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str
    """`stop`, `length`, or what the backend reported."""


@dataclass(frozen=True)
class RowFailure:
    """A request that failed on its own (the rest of its batch is unaffected)."""

    reason: str
    """`rejected` (the endpoint refused this request), `gave_up` (retries spent) or `error`."""
    message: str


class SynthError(RuntimeError):
    """A generator backend failed for good (after its retries)."""

    def __init__(self, message: str, row_reason: str | None = None):
        super().__init__(message)
        self.row_reason = row_reason
        """Set when the failure is this request's alone (see `RowFailure.reason`); None when
        it would fail every request (no key, a wrong key, an unknown model): the run stops."""


class MalformedResponse(ValueError):
    """A response body without the fields of a chat completion."""


def _parse_chat_response(response: Any) -> Completion:
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise MalformedResponse("response has no choices")
    message = getattr(choices[0], "message", None)
    text = getattr(message, "content", None)
    if not isinstance(text, str):
        raise MalformedResponse("response has no message content")
    return Completion(text, getattr(choices[0], "finish_reason", None) or "stop")


# ---------------------------------------------------------------------------------------------


class RulesBackend:
    """The deterministic phrase-bank rewriter (offline stand-in for an LLM)."""

    name = "rules"

    def __init__(self, cfg: SynthConfig):
        self.cfg = cfg

    def generate(self, requests: list[Request]) -> list[Completion]:
        return [
            Completion(rules.rewrite(r.answer, r.style, key=r.prompt_id), "stop") for r in requests
        ]


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


def render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The prompt text of `messages` under the tokenizer's chat template, generation prompt on.

    Some chat templates have no system role: Gemma 3's merges a system message into the first
    user turn itself; others (Gemma 2's) raise. For those the system message is merged here the
    way Gemma 3 does it (system text, a blank line, the user's text), so every request renders.
    """
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - a template's raise_exception; retried once below
        merged = merge_system(messages)
        if merged == messages:
            raise
        return tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)


def merge_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """A leading system message folded into the first user turn (Gemma 3's own convention)."""
    if len(messages) < 2 or messages[0]["role"] != "system" or messages[1]["role"] != "user":
        return messages
    first = {"role": "user", "content": f"{messages[0]['content']}\n\n{messages[1]['content']}"}
    return [first, *messages[2:]]


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


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible endpoint: retries, bounded concurrency."""

    name = "openai"

    def __init__(self, cfg: SynthConfig, sleep: Callable[[float], None] = time.sleep):
        import openai

        try:
            self._client = make_client(cfg.openai, "synth.openai.api_key_env")
        except RuntimeError as e:
            raise SynthError(f"synth.backend 'openai': {e}") from e
        self.cfg = cfg
        self._openai = openai
        self._sleep = sleep
        self._lock = threading.Lock()
        self.retries: dict[str, int] = {}
        """Retries by error kind, for the run's card."""

    def _retryable(self, e: BaseException) -> str | None:
        o = self._openai
        if isinstance(e, o.RateLimitError):
            return "429"
        if isinstance(e, o.APIStatusError) and e.status_code >= 500:
            return "5xx"
        if isinstance(e, o.APITimeoutError):
            return "timeout"
        if isinstance(e, o.APIConnectionError):
            return "connection"
        if isinstance(e, o.APIResponseValidationError | MalformedResponse | ValueError):
            return "malformed"
        return None

    def _count_retry(self, kind: str) -> None:
        with self._lock:
            self.retries[kind] = self.retries.get(kind, 0) + 1

    def _one(self, request: Request) -> Completion:
        def call() -> Completion:
            response = self._client.chat.completions.create(
                model=self.cfg.model,
                messages=request.messages,  # type: ignore[arg-type]
                temperature=self.cfg.temperature,
                top_p=self.cfg.top_p,
                max_tokens=self.cfg.max_new_tokens,
                seed=request.seed,
            )
            return _parse_chat_response(response)

        s = self.cfg.openai
        try:
            return call_with_retries(
                call,
                s,
                random.Random(request.seed),
                self._count_retry,
                classify=self._retryable,
                sleep=self._sleep,
            )
        except Exception as e:  # noqa: BLE001 - classified below
            kind = self._retryable(e)
            if kind is None:
                o = self._openai
                # a bad request is this row's; a key, permission or model error is everyone's
                row = isinstance(e, o.BadRequestError | o.UnprocessableEntityError)
                raise SynthError(
                    f"request {request.key}: {type(e).__name__}: {e}", "rejected" if row else None
                ) from e
            raise SynthError(
                f"request {request.key}: gave up after {s.max_retries + 1} "
                f"attempts; last error {kind}: {e}",
                "gave_up",
            ) from e

    def stream(self, requests: list[Request]) -> Iterator[tuple[int, Completion | RowFailure]]:
        """Results as they arrive. A request's own failure is a RowFailure; one that would fail
        every request stops the run after the requests already in flight have finished."""
        if not requests:
            return
        workers = max(1, min(self.cfg.openai.concurrency, len(requests)))
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            futures = {pool.submit(self._one, r): i for i, r in enumerate(requests)}
            fatal: SynthError | None = None
            for future in as_completed(futures):
                if future.cancelled():
                    continue
                try:
                    yield futures[future], future.result()
                except SynthError as e:
                    if e.row_reason is not None:
                        yield futures[future], RowFailure(e.row_reason, str(e)[:500])
                    elif fatal is None:
                        fatal = e
                        for other in futures:
                            other.cancel()
            if fatal is not None:
                raise fatal
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def generate(self, requests: list[Request]) -> list[Completion]:
        workers = max(1, min(self.cfg.openai.concurrency, len(requests)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self._one, requests))


class TransformersBackend:
    """A local chat model through transformers `generate` (batched, left-padded, seeded)."""

    name = "transformers"

    def __init__(self, cfg: SynthConfig):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = cfg
        self._torch = torch
        device = cfg.transformers.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            cfg.model, dtype=getattr(torch, cfg.transformers.dtype)
        ).to(device)
        self.model.eval()
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}

    def generate(self, requests: list[Request]) -> list[Completion]:
        torch = self._torch
        texts = [render_chat(self.tokenizer, r.messages) for r in requests]
        batch = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        torch.manual_seed(requests[0].seed)
        sample = self.cfg.temperature > 0
        with torch.no_grad():
            out = self.model.generate(
                **batch,
                max_new_tokens=self.cfg.max_new_tokens,
                do_sample=sample,
                temperature=self.cfg.temperature if sample else None,
                top_p=self.cfg.top_p if sample else None,
                top_k=0 if sample else None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, batch["input_ids"].shape[1] :]
        completions = []
        for row in new.tolist():
            ended = next((i for i, t in enumerate(row) if t in self.eos_ids), None)
            tokens = row if ended is None else row[:ended]
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            completions.append(Completion(text, "stop" if ended is not None else "length"))
        return completions


def make_backend(cfg: SynthConfig) -> Any:
    return {
        "rules": RulesBackend,
        "vllm": VLLMBackend,
        "openai": OpenAIBackend,
        "transformers": TransformersBackend,
    }[cfg.backend](cfg)
