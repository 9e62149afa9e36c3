"""What a generator backend takes and gives: one `Request` per row to rewrite, one `Completion`
(or a `RowFailure`) per request, in order; and the chat rendering the local backends share."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol


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


class GeneratorBackend(Protocol):
    """Maps requests to completions in the same order.

    A backend may also have `stream(requests)`, yielding (index, Completion | RowFailure) as
    results arrive (a row's own failure does not fail its batch), `check(requests)` (request
    key -> why it is not sent) and `retries` (retries by error kind, for the run's card);
    `rewrite` uses them where present.
    """

    name: str
    whole_batches: bool
    """Whether a batch must be sent whole, even when some of its rows are cached (a batch
    sampled with one generator gives a row another text in another batch)."""

    def generate(self, requests: list[Request]) -> list[Completion]: ...


def stream(backend: Any, requests: list[Request]) -> Iterator[tuple[int, Completion | RowFailure]]:
    """(index, Completion | RowFailure) as the backend delivers them; a backend without
    `stream` delivers its whole call at once."""
    if hasattr(backend, "stream"):
        yield from backend.stream(requests)
        return
    completions = backend.generate(requests)
    if len(completions) != len(requests):
        raise RuntimeError(
            f"backend returned {len(completions)} completions for {len(requests)} requests"
        )
    yield from enumerate(completions)


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
