"""Completion masks on the real Qwen2.5 vocabulary and ChatML template (rebuilt offline).

The training engine is tested elsewhere on the tiny model's own 4k tokenizer; here the same
`tokenize_sft` / `tokenize_pairs` run on Qwen2.5's 151k vocabulary with its real special-token
ids: exactly the assistant answer and its closing `<|im_end|>` (151645) are trained, and the
prompt is the template's rendering with the generation prompt.
"""

from __future__ import annotations

import pytest
from qwen_vocab import QWEN25_DEFAULT_SYSTEM, qwen25_tokenizer, qwen_split_pattern

from stylized_dpo.model import QWEN_SPLIT_PATTERN
from stylized_dpo.records import PreferencePair, SFTExample
from stylized_dpo.train.tokens import filter_by_length, tokenize_pairs, tokenize_sft

IM_START, IM_END = 151644, 151645
ASSISTANT_PROMPT = [IM_START, 77091, 198]  # "<|im_start|>" "assistant" "\n"

EXAMPLES = [
    SFTExample("plain", "What is the capital of Norway?", "The capital of Norway is Oslo."),
    SFTExample(
        "system",
        "List three primes.",
        "Here are three:\n1. 2\n2. 3\n3. 5\n\nAll of them are prime.",
        system="You answer with numbered lists.",
    ),
    SFTExample(
        "unicode",
        "Translate 'coffee costs 12.50 euros' into French, then say hi in Japanese.",
        "Le café coûte 12,50 € — très cher ! Puis : こんにちは 🙂",
    ),
    SFTExample("trailing-space", "Say done.", "Done.  \n"),
    SFTExample("leading-newline", "Start on a new line.", "\nSure:\n\tindented line"),
    SFTExample("digits", "Count to 12 in one line.", "1 2 3 4 5 6 7 8 9 10 11 12 (2025-11-26)"),
]


@pytest.fixture(scope="session")
def tok():
    return qwen25_tokenizer()


def chatml(system: str | None, user: str) -> str:
    """Qwen2.5's generation prompt for one user turn, written out by hand."""
    system = QWEN25_DEFAULT_SYSTEM if system is None else system
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def encode(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_real_qwen_vocabulary(tok):
    assert encode(tok, "Hello world") == [9707, 1879]
    specials = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    assert [tok.convert_tokens_to_ids(t) for t in specials] == [151643, IM_START, IM_END]
    assert len(tok) == 151665  # 151,643 BPE tokens + the 22 added tokens, as Qwen2.5 ships them
    assert encode(tok, "2025") == [encode(tok, d)[0] for d in "2025"]  # one digit per token
    assert encode(tok, "<|im_start|>assistant\n") == ASSISTANT_PROMPT
    # the tiny model's tokenizer splits text exactly as Qwen does
    assert QWEN_SPLIT_PATTERN == qwen_split_pattern()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda ex: ex.prompt_id)
def test_sft_trains_exactly_the_answer_and_im_end(tok, example):
    (chat,) = tokenize_sft(tok, [example])
    ids, mask = chat.input_ids, chat.completion_mask
    trained = [i for i, m in zip(ids, mask, strict=True) if m]
    untrained = [i for i, m in zip(ids, mask, strict=True) if not m]
    # the mask is one block at the end: prompt first, then the completion
    assert mask == [0] * len(untrained) + [1] * len(trained)
    assert trained == encode(tok, example.assistant) + [IM_END]
    assert trained.count(IM_END) == 1 and IM_START not in trained
    assert tok.decode(trained, skip_special_tokens=False) == example.assistant + "<|im_end|>"
    # the prompt is the template's rendering with the generation prompt, as at inference time
    rendered = tok.apply_chat_template(
        example.prompt_messages(), tokenize=False, add_generation_prompt=True
    )
    assert rendered == chatml(example.system, example.user)
    assert untrained == chat.prompt_ids == encode(tok, rendered)
    assert untrained[-3:] == ASSISTANT_PROMPT
    # prompt + completion is the whole conversation as the template renders it, up to <|im_end|>
    full = tok.apply_chat_template(
        [*example.prompt_messages(), {"role": "assistant", "content": example.assistant}],
        tokenize=False,
    )
    assert tok.decode(ids, skip_special_tokens=False) == full.removesuffix("\n")


def test_pairs_train_exactly_each_answer_and_im_end(tok):
    pairs = [
        PreferencePair(ex.prompt_id, ex.user, ex.assistant, f"I am not sure.\n{i}")
        for i, ex in enumerate(EXAMPLES)
    ]
    tokenized = tokenize_pairs(tok, pairs)
    for pair, t in zip(pairs, tokenized, strict=True):
        rendered = tok.apply_chat_template(
            [{"role": "user", "content": pair.prompt}], tokenize=False, add_generation_prompt=True
        )
        assert rendered == chatml(None, pair.prompt)
        assert t.prompt_ids == encode(tok, rendered)
        for answer, completion in ((pair.chosen, t.chosen_ids), (pair.rejected, t.rejected_ids)):
            assert completion == encode(tok, answer) + [IM_END]
            assert tok.decode(completion, skip_special_tokens=False) == answer + "<|im_end|>"


def test_prompt_length_filter_counts_real_qwen_tokens(tok):
    # each digit is one Qwen token, so "x" followed by n digits is exactly n tokens longer than "x"
    (base,) = tokenize_sft(tok, [SFTExample("base", "x", "ok")])
    limit = len(base.prompt_ids) + 10
    examples = [SFTExample(f"n{n}", "x" + "7" * n, "ok") for n in (0, 5, 10, 11, 40)]
    chats = tokenize_sft(tok, examples)
    assert [len(c.prompt_ids) - len(base.prompt_ids) for c in chats] == [0, 5, 10, 11, 40]
    kept, drops = filter_by_length(chats, max_prompt_tokens=limit, max_completion_tokens=100)
    assert [c.prompt_id for c in kept] == ["n0", "n5", "n10"]
    assert drops == {"prompt_too_long": 2, "completion_too_long": 0}
    # "ok" + <|im_end|> is two tokens; a limit of one drops every completion
    with pytest.raises(ValueError, match="completion_too_long': 3"):
        filter_by_length(chats, max_prompt_tokens=limit, max_completion_tokens=1)


TEMPLATE_TOKENS = 19
"""Tokens the base model's template adds around a single user turn (its default system turn,
the user turn's markers and the generation prompt): they count against `max_prompt_tokens`."""


@pytest.mark.parametrize(
    "prompt",
    ["Hello world", "Translate 'good morning' into French.", " leading space", "Écris 3 lignes.\n"],
)
def test_the_base_template_adds_its_default_system_turn_to_every_prompt(tok, prompt):
    (pair,) = tokenize_pairs(tok, [PreferencePair("p", prompt, "Yes.", "No.")])
    rendered = tok.decode(pair.prompt_ids, skip_special_tokens=False)
    assert rendered.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert "Alibaba" not in rendered  # the Instruct models' default, not the base model's
    assert len(pair.prompt_ids) == len(encode(tok, prompt)) + TEMPLATE_TOKENS
    # so a 256-token prompt limit leaves 237 tokens for the UltraFeedback prompt itself
    limit = 256
    fits = PreferencePair("a", "7" * (limit - TEMPLATE_TOKENS), "Yes.", "No.")
    over = PreferencePair("b", "7" * (limit - TEMPLATE_TOKENS + 1), "Yes.", "No.")
    kept, drops = filter_by_length(tokenize_pairs(tok, [fits, over]), limit, 1024)
    assert [p.prompt_id for p in kept] == ["a"] and drops["prompt_too_long"] == 1
