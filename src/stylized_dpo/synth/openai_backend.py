"""The `openai` generator backend: any OpenAI-compatible chat-completions endpoint, bounded
concurrency, retries with exponential backoff and full jitter on 429, 5xx, timeouts, connection
errors and malformed bodies (the client and its retries are `stylized_dpo/api.py`'s).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any

from stylized_dpo.api import call_with_retries, error_kind, make_client
from stylized_dpo.synth.generator import Completion, Request, RowFailure, SynthError

if TYPE_CHECKING:
    from stylized_dpo.synth.backends import SynthConfig

RETRY_NAMES = {
    "rate_limit": "429",
    "server_error": "5xx",
    "timeout": "timeout",
    "connection": "connection",
    "malformed": "malformed",
}
"""`api.error_kind` -> the name the run's card counts retries under."""


class MalformedResponse(ValueError):
    """A response body without the fields of a chat completion."""


def _completion(response: Any) -> Completion:
    """The SDK's response object read as a `Completion` (a cut-off reply is kept: `rewrite`
    counts it as a truncated drop)."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise MalformedResponse("response has no choices")
    message = getattr(choices[0], "message", None)
    text = getattr(message, "content", None)
    if not isinstance(text, str):
        raise MalformedResponse("response has no message content")
    return Completion(text, getattr(choices[0], "finish_reason", None) or "stop")


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible endpoint: retries, bounded concurrency."""

    name = "openai"
    whole_batches = False

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
        kind = error_kind(e)
        return None if kind is None else RETRY_NAMES[kind]

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
            return _completion(response)

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
