"""The one OpenAI-compatible client: calling an endpoint many times, safely; reading its replies.

Used by the LLM judge (`evals/judge.py`), the reward API and the pairwise judge
(`evals/rewards.py`), and the rewrite generator (`synth/openai_backend.py`). `batch_ask` runs a
batch of validated requests (their replies read by `reply_content`); the generator, which
validates nothing, uses the client (`make_client`) and the retries (`call_with_retries`,
`error_kind`) alone. Rules:
- transient failures (HTTP 429, 5xx, timeouts, dropped connections) are retried up to
  `max_retries` times with exponential backoff and full jitter (a server's `Retry-After` header,
  when sent, is honoured up to `backoff_max_s`); other HTTP errors (400, 401, 404, ...) are not;
- a reply whose content fails validation is asked for again up to `invalid_retries` times;
- an item that still has no valid answer is a counted failure with its last reason, never a
  guessed or coerced score;
- every valid answer is written to an on-disk cache (one small JSON file per key, written
  atomically) before it is used, so a rerun, or a run after a crash, never pays for it again.
  Failures are not cached: a rerun tries them again.
The API key comes from an environment variable (named in config); it is never logged or written.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from stylized_dpo.io import atomic_path

T = TypeVar("T")


class InvalidReply(ValueError):
    """The endpoint answered, but the content is not what was asked for (retry, then fail)."""


@dataclass(frozen=True)
class ClientSettings:
    """How to reach an OpenAI-compatible endpoint and how hard to try.

    The fields of config keys `judge`, `win_rates` and `synth.openai` (see config/README.md).
    """

    base_url: str | None = None
    """Endpoint (None: the OpenAI API)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the key (the key itself is never in config)."""
    concurrency: int = 8
    """Requests in flight at once (threads)."""
    max_retries: int = 6
    """Retries of one request after a transient error (429, 5xx, timeout, ...)."""
    timeout_s: float = 60.0
    """Per-request timeout."""
    backoff_base_s: float = 1.0
    """First backoff ceiling; doubles per retry (full jitter: uniform(0, ceiling))."""
    backoff_max_s: float = 60.0
    """Largest backoff ceiling, and the cap on a server's Retry-After."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.max_retries < 0:
            raise ValueError("retries must be >= 0")


@dataclass(frozen=True)
class ApiConfig(ClientSettings):
    """An endpoint whose replies are validated (`ask`): also how often to ask again."""

    invalid_retries: int = 2
    """Further requests after a reply that fails validation."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.invalid_retries < 0:
            raise ValueError("retries must be >= 0")


def make_client(settings: ClientSettings, config_key: str) -> Any:
    """An `openai.OpenAI` client with the SDK's own retries off (ours are counted).

    `config_key` names where `api_key_env` is set (for the error when the variable is unset).
    """
    import openai

    key = os.environ.get(settings.api_key_env)
    if not key:
        raise RuntimeError(
            f"environment variable {settings.api_key_env} is not set: the API key is read only "
            f"from the environment (set {config_key} to rename it)"
        )
    return openai.OpenAI(
        api_key=key, base_url=settings.base_url, timeout=settings.timeout_s, max_retries=0
    )


class DiskCache:
    """One JSON file per key under `directory/<key[:2]>/`; writes are atomic, reads tolerant."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> Any | None:
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None  # a damaged entry is treated as missing and rewritten

    def put(self, key: str, value: Any) -> None:
        with atomic_path(self._path(key)) as tmp:
            tmp.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")


@dataclass
class CallStats:
    """Counters of one run (thread-safe through `add`)."""

    items: int = 0
    cached: int = 0
    api_calls: int = 0
    retries_rate_limit: int = 0
    retries_server_error: int = 0
    retries_timeout: int = 0
    retries_invalid: int = 0
    invalid_replies: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def fail(self, item_id: str, reason: str) -> None:
        with self._lock:
            self.failed += 1
            self.failures.append({"id": item_id, "reason": reason})

    def cost_usd(self, price_input_per_mtok: float, price_output_per_mtok: float) -> float:
        """Estimated cost of the token usage at per-million-token prices."""
        tokens = self.prompt_tokens * price_input_per_mtok
        return (tokens + self.completion_tokens * price_output_per_mtok) / 1e6

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        out["failures"] = sorted(self.failures, key=lambda f: f["id"])
        return out


def error_kind(exc: BaseException) -> str | None:
    """What went wrong with one call, when it is worth another try: 'rate_limit',
    'server_error', 'timeout', 'connection' (dropped or refused) or 'malformed' (a body that is
    not a chat completion); None for any other error (400, 401, 404, ...)."""
    import openai

    if isinstance(exc, openai.RateLimitError):
        return "rate_limit"
    if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
        return "server_error"
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.APIResponseValidationError | ValueError):
        return "malformed"
    return None


def transient_kind(exc: BaseException) -> str | None:
    """'rate_limit', 'server_error' or 'timeout' (a dropped connection too) for an error `ask`
    retries, else None (`ask` validates replies and asks again itself)."""
    kind = error_kind(exc)
    if kind == "connection":
        return "timeout"
    return None if kind == "malformed" else kind


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def call_with_retries(
    request: Callable[[], T],
    settings: ClientSettings,
    rng: random.Random,
    on_retry: Callable[[str], None],
    classify: Callable[[BaseException], str | None] = transient_kind,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `request` (one API call), retrying the errors `classify` names (its kind is passed to
    `on_retry`) up to `settings.max_retries` times; re-raises the last error.

    Backoff: full jitter, uniform(0, min(backoff_max_s, backoff_base_s * 2**attempt)); a server's
    Retry-After, when sent, is waited for at least, up to backoff_max_s.
    """
    for attempt in range(settings.max_retries + 1):
        try:
            return request()
        except Exception as exc:
            kind = classify(exc)
            if kind is None or attempt == settings.max_retries:
                raise
            on_retry(kind)
            ceiling = min(settings.backoff_max_s, settings.backoff_base_s * 2**attempt)
            delay = rng.uniform(0, ceiling)
            hinted = _retry_after(exc)
            if hinted is not None:
                delay = max(delay, min(hinted, settings.backoff_max_s))
            sleep(delay)
    raise AssertionError("unreachable")


def describe_error(exc: BaseException) -> str:
    """A short, key-free description of a failure for the run report."""
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{name}{f' (HTTP {status})' if status else ''}: {text}"


def reply_content(data: dict[str, Any], allow_truncated: bool = False) -> Any:
    """The message content of a chat completion's first choice (the completion as a dict);
    `InvalidReply` when it has no choices, or when the reply was cut off at the token limit
    (unless `allow_truncated`: a reward's score needs no end)."""
    choices = data.get("choices") or []
    if not choices:
        raise InvalidReply("no choices in the reply")
    if choices[0].get("finish_reason") == "length" and not allow_truncated:
        raise InvalidReply("reply cut off at the token limit")
    return (choices[0].get("message") or {}).get("content")


def ask(
    request: Callable[[], Any],
    parse: Callable[[Any], T],
    cache: DiskCache,
    key: str,
    config: ApiConfig,
    stats: CallStats,
) -> T:
    """One item: the cached answer if there is one, else call (with retries) until `parse` accepts.

    `request()` returns the SDK's response object; `parse(response_dict)` returns the result or
    raises `InvalidReply`. The response (as a dict) is cached only once it parses, so the cache
    never holds an invalid answer and a cached answer is parsed by the same code as a fresh one.
    """
    cached = cache.get(key)
    if cached is not None:
        try:
            result = parse(cached)
        except InvalidReply:
            pass  # e.g. validation rules changed since it was cached: ask again
        else:
            stats.add(cached=1)
            return result
    rng = random.Random(key)

    def counted_request() -> Any:
        stats.add(api_calls=1)
        return request()

    def count_retry(kind: str) -> None:
        stats.add(**{f"retries_{kind}": 1})

    last: InvalidReply | None = None
    for attempt in range(config.invalid_retries + 1):
        response = call_with_retries(counted_request, config, rng, count_retry)
        data = response.model_dump() if hasattr(response, "model_dump") else dict(response)
        usage = data.get("usage") or {}
        stats.add(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
        try:
            result = parse(data)
        except InvalidReply as exc:
            last = exc
            stats.add(invalid_replies=1)
            if attempt < config.invalid_retries:
                stats.add(retries_invalid=1)
            continue
        cache.put(key, data)
        return result
    assert last is not None
    raise last


def run_items(
    ids: list[str], work: Callable[[str], T], config: ClientSettings, stats: CallStats, desc: str
) -> dict[str, T]:
    """Run `work(item_id)` for every id with bounded concurrency (`config.concurrency` threads).

    An error raised by `work` is recorded as that item's failure. Returns results by id (failed
    items absent). Each id is processed exactly once; duplicate ids are refused.
    """
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate item ids")
    results: dict[str, T] = {}
    lock = threading.Lock()

    def one(item_id: str) -> None:
        try:
            result = work(item_id)
        except Exception as exc:
            stats.fail(item_id, describe_error(exc))
            return
        with lock:
            results[item_id] = result

    stats.add(items=len(ids))
    with ThreadPoolExecutor(max_workers=config.concurrency) as pool:
        futures = [pool.submit(one, item_id) for item_id in ids]
        try:
            for future in tqdm(as_completed(futures), total=len(ids), desc=desc, mininterval=1.0):
                future.result()  # re-raises a crash (KeyboardInterrupt, SystemExit, ...)
        except BaseException:
            # Stop at once: requests not yet sent are cancelled; answers already cached stay.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results


@dataclass(frozen=True)
class Call:
    """One chat-completions request of a batch."""

    key: str
    """Cache key (`cache_key` over everything that changes the answer)."""
    messages: list[dict[str, str]]
    options: dict[str, Any] = field(default_factory=dict)
    """Further arguments of `chat.completions.create` (temperature, max_tokens, ...)."""


def batch_ask(
    ids: list[str],
    call: Callable[[str], Call],
    parse: Callable[[dict[str, Any]], T],
    model: str,
    config: ApiConfig,
    cache_dir: str | os.PathLike[str],
    config_key: str,
    desc: str,
    client: Any = None,
) -> tuple[dict[str, T], CallStats]:
    """Ask `model` once per item id: `call(id)` builds the request, `parse(reply)` validates the
    reply (`InvalidReply` to ask again). Returns the parsed answers by id (failed items absent,
    recorded in the stats with their reasons) and the run's counters.

    `client` defaults to `make_client(config, config_key)`; answers are cached under
    `cache_dir` by `Call.key` (see `ask`).
    """
    client = client if client is not None else make_client(config, config_key)
    cache = DiskCache(cache_dir)
    stats = CallStats()

    def work(item_id: str) -> T:
        one = call(item_id)

        def request() -> Any:
            return client.chat.completions.create(model=model, messages=one.messages, **one.options)

        return ask(request, parse, cache, one.key, config, stats)

    return run_items(ids, work, config, stats, desc=desc), stats
