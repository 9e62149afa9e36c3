"""The tiny Qwen2 stand-in: a byte-level BPE tokenizer with Qwen's special tokens and ChatML
template, a Qwen2 config sized for a CPU, and the loading helpers every stage uses.

The real Qwen2.5-0.5B is loaded by the same helpers (`load_model`, `load_tokenizer`), so a stage
never knows whether it trains the miniature or the paper's model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

from stylized_dpo.io import iter_json_lines, read_records
from stylized_dpo.records import SFTExample

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]
"""Qwen2.5's first three special tokens, in Qwen's order (ids 0, 1, 2 here)."""

DEFAULT_SYSTEM = "You are a helpful assistant."

# Qwen2's pre-tokenizer split (digits one at a time, as in Qwen's tokenizer.json).
QWEN_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Qwen2.5's ChatML template without the tool-calling branches: a default system turn when none is
# given, every turn closed by `<|im_end|>\n`, and `<|im_start|>assistant\n` as generation prompt.
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, model_max_length: int
) -> PreTrainedTokenizerFast:
    """Train a Qwen2-style byte-level BPE on `texts`.

    Same normaliser (NFC), split pattern and byte-level alphabet as Qwen2, so any string encodes
    (no unknown token); the vocabulary is just much smaller. `<|endoftext|>` is pad and eos, as in
    the Qwen2.5 base model.
    """
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=ENDOFTEXT,
        pad_token=ENDOFTEXT,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=model_max_length,
        chat_template=CHAT_TEMPLATE,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


def train_base_tokenizer(
    corpus_path: str | os.PathLike[str],
    chats_path: str | os.PathLike[str],
    vocab_size: int,
    model_max_length: int,
) -> PreTrainedTokenizerFast:
    """The tiny model's tokenizer, trained on corpus texts + SFT chats.

    The chats join the training texts so that chat words are whole tokens; the model itself
    never sees them in pretraining.
    """
    corpus = [row["text"] for _, row in iter_json_lines(corpus_path)]
    chats = read_records(chats_path, SFTExample)
    chat_texts = [t for c in chats for t in (c.system, c.user, c.assistant) if t]
    return train_tokenizer(corpus + chat_texts, vocab_size, model_max_length)


def tiny_qwen2_config(tokenizer: PreTrainedTokenizerFast, **architecture: Any) -> Qwen2Config:
    """A Qwen2 config for `tokenizer`'s vocabulary; `architecture` sets the sizes.

    Embeddings are tied (as in Qwen2.5-0.5B), which also keeps the tiny model's parameter count
    from being dominated by two vocabulary matrices.
    """
    defaults: dict[str, Any] = {
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 512,
        "max_position_embeddings": tokenizer.model_max_length,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    }
    unknown = set(architecture) - set(defaults) - {"rms_norm_eps", "initializer_range"}
    if unknown:
        raise ValueError(f"unknown architecture keys: {sorted(unknown)}")
    eos = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    return Qwen2Config(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
        attention_dropout=0.0,
        use_cache=True,
        **{**defaults, **architecture},
    )


def set_chat_eos(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast) -> None:
    """Make a chat model stop at `<|im_end|>`, as Qwen2.5-Instruct does.

    Called when saving SFT and DPO models, so `generate` ends an answer at its end of turn.
    """
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    endoftext = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    tokenizer.eos_token = IM_END
    model.generation_config.eos_token_id = [im_end, endoftext]
    model.generation_config.pad_token_id = endoftext


def load_model(
    path: str | os.PathLike[str], dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> PreTrainedModel:
    """Load a causal LM saved with `save_pretrained` (or a hub name), with SDPA attention."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
    return model.to(device)


def load_tokenizer(
    path: str | os.PathLike[str], revision: str | None = None
) -> PreTrainedTokenizerFast:
    """Load the tokenizer (with its chat template) saved beside a model, or from the hub."""
    tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    if tokenizer.pad_token is None:  # some hub tokenizers have none; Qwen2.5 pads with endoftext
        tokenizer.pad_token = ENDOFTEXT
    return tokenizer


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when a GPU is visible, else `cpu`."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def fetch_base_model(
    name: str,
    out_dir: str | os.PathLike[str],
    tokenizer_dir: str | os.PathLike[str],
    revision: str | None = None,
) -> None:
    """Download a hub model and save it with the study's tokenizer (`build_tokenizer`'s: the
    hub model's own, unless the config replaced its chat template)."""
    model = AutoModelForCausalLM.from_pretrained(name, revision=revision, dtype=torch.float32)
    tokenizer = load_tokenizer(tokenizer_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    print(f"saved {name} ({sum(p.numel() for p in model.parameters()) / 1e6:.0f} M) to {out_dir}")


def build_tokenizer(
    source: str,
    out_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    revision: str | None = None,
    corpus_path: str | os.PathLike[str] | None = None,
    chats_path: str | os.PathLike[str] | None = None,
    vocab_size: int | None = None,
    model_max_length: int = 512,
    chat_template_path: str | os.PathLike[str] | None = None,
) -> PreTrainedTokenizerFast:
    """The base model's tokenizer, saved to `out_dir`: trained on the world (`pretrain`) or the
    hub model's own (`hub`), with its chat template replaced by `chat_template_path` if given.

    Every model of the study carries this tokenizer, and the tokenised shards are keyed by it.
    """
    if source == "pretrain":
        if corpus_path is None or chats_path is None or vocab_size is None:
            raise ValueError("source 'pretrain' needs corpus_path, chats_path and vocab_size")
        tokenizer = train_base_tokenizer(corpus_path, chats_path, vocab_size, model_max_length)
    elif source == "hub":
        if name is None:
            raise ValueError("source 'hub' needs the model's name")
        tokenizer = load_tokenizer(name, revision)
    else:
        raise ValueError(f"unknown tokenizer source {source!r} (pretrain or hub)")
    if chat_template_path is not None:
        tokenizer.chat_template = Path(chat_template_path).read_text(encoding="utf-8")
    tokenizer.save_pretrained(out_dir)
    return tokenizer
