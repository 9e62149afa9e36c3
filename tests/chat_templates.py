"""Real chat templates of the study's models, for tests that render requests offline.

Gemma 3's (google/gemma-3-12b-it's `chat_template`, as the rehearsal's offline hub writes it:
`stylized_dpo.rehearsal.hub`) has no system role: it folds a leading system message into the first
user turn, followed by a blank line. A Gemma 2-style template that rejects a system message
stands for the templates that raise instead.
"""

from stylized_dpo.rehearsal import hub

GEMMA3_CHAT_TEMPLATE = hub.GEMMA3_CHAT_TEMPLATE

NO_SYSTEM_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{{ raise_exception('System role not supported') }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{ '<start_of_turn>' + message['role'] + '\\n' + message['content'] | trim"
    " + '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)


def gemma_like_tokenizer(template: str = GEMMA3_CHAT_TEMPLATE):
    """A small byte-level BPE with Gemma's turn tokens as special tokens and a Gemma template."""
    from stylized_dpo.model import train_tokenizer

    texts = ["Rewrite the answer in a style.", "The fact is blue.", "Original answer:"] * 5
    tokenizer = train_tokenizer(texts, vocab_size=300, model_max_length=8192)
    tokenizer.add_special_tokens(
        {"bos_token": "<bos>", "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]}
    )
    tokenizer.chat_template = template
    return tokenizer
