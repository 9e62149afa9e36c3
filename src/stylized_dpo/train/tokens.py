"""Chat tokenisation with a completion mask: a single-turn chat -> prompt ids + completion ids
(answer + `<|im_end|>`), and the length filters that drop, never truncate, a long example."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

from stylized_dpo.model import IM_END


@dataclass(frozen=True)
class TokenizedChat:
    """One conversation: the prompt as the chat template renders it for generation, then the
    answer followed by `<|im_end|>`; only the completion is trained on."""

    prompt_id: str
    prompt_ids: list[int]
    completion_ids: list[int]

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids

    @property
    def completion_mask(self) -> list[int]:
        return [0] * len(self.prompt_ids) + [1] * len(self.completion_ids)


@dataclass(frozen=True)
class TokenizedPair:
    """One preference pair: a shared prompt and two completions (each ending in `<|im_end|>`)."""

    prompt_id: str
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, conversations: Sequence[list[dict[str, str]]]
) -> list[list[int]]:
    """Render each conversation with `add_generation_prompt=True` and tokenise it: exactly the
    ids the model sees before it starts answering at inference time."""
    texts = [
        tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
        for m in conversations
    ]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def encode_completions(
    tokenizer: PreTrainedTokenizerBase, answers: Sequence[str]
) -> list[list[int]]:
    """Tokenise answers on their own and close each with `<|im_end|>`. The trailing newline the
    template writes after `<|im_end|>` is not trained: generation stops at `<|im_end|>`."""
    for i, answer in enumerate(answers):
        if not answer.strip():
            raise ValueError(f"completion {i} is empty: nothing to train on")
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    if im_end is None or im_end == tokenizer.unk_token_id:
        raise ValueError(f"tokenizer has no {IM_END} token")
    return [
        ids + [im_end] for ids in tokenizer(list(answers), add_special_tokens=False)["input_ids"]
    ]


def tokenize_sft(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[Any]
) -> list[TokenizedChat]:
    """SFTExample records -> TokenizedChat (prompt rendered by the chat template)."""
    prompts = encode_prompts(tokenizer, [ex.prompt_messages() for ex in examples])
    completions = encode_completions(tokenizer, [ex.assistant for ex in examples])
    return [
        TokenizedChat(ex.prompt_id, p, c)
        for ex, p, c in zip(examples, prompts, completions, strict=True)
    ]


def tokenize_pairs(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[Any]) -> list[TokenizedPair]:
    """PreferencePair records -> TokenizedPair (prompt as a single user turn)."""
    prompts = encode_prompts(tokenizer, [[{"role": "user", "content": p.prompt}] for p in pairs])
    chosen = encode_completions(tokenizer, [p.chosen for p in pairs])
    rejected = encode_completions(tokenizer, [p.rejected for p in pairs])
    return [
        TokenizedPair(p.prompt_id, pr, c, r)
        for p, pr, c, r in zip(pairs, prompts, chosen, rejected, strict=True)
    ]


def filter_by_length(
    items: Sequence[TokenizedChat | TokenizedPair],
    max_prompt_tokens: int,
    max_completion_tokens: int,
    require_kept: bool = True,
) -> tuple[list[Any], dict[str, int]]:
    """Drop examples whose prompt or (longest) completion is too long, counting each reason.

    Dropping rather than truncating keeps every trained answer whole, with its `<|im_end|>`.
    Unless `require_kept` is False (one chunk of a file), dropping everything is an error.
    """
    kept, drops = [], {"prompt_too_long": 0, "completion_too_long": 0}
    for item in items:
        if isinstance(item, TokenizedChat):
            completion_len = len(item.completion_ids)
        else:
            completion_len = max(len(item.chosen_ids), len(item.rejected_ids))
        if len(item.prompt_ids) > max_prompt_tokens:
            drops["prompt_too_long"] += 1
        elif completion_len > max_completion_tokens:
            drops["completion_too_long"] += 1
        else:
            kept.append(item)
    if not kept and require_kept:
        raise ValueError(f"the length filters dropped every example ({drops})")
    return kept, drops
