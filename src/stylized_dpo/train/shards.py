"""Tokenised shards: SFT chats and preference pairs, tokenised and length-filtered once.

A shard is a Parquet file of token ids (one row per example) whose schema metadata records what
made it: the tokenizer's fingerprint (vocabulary, merges, normaliser, chat template), the length
limits, the drops by reason and the source file's hash. The workflow writes one per dataset and
split in its own rule, so a new tokenizer, chat template or length limit rebuilds the shards and
a new learning rate does not. Trainers load shards with `load_chats` / `load_pairs`, which refuse
a shard made by another tokenizer or other limits; given a JSONL file instead (library use,
tests), they tokenise and filter it on the spot with the same code.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from transformers import PreTrainedTokenizerBase

from stylized_dpo.data import percentiles, sha256_file
from stylized_dpo.io import atomic_path, read_records, write_json
from stylized_dpo.records import PreferencePair, SFTExample
from stylized_dpo.train.common import (
    TokenizedChat,
    TokenizedPair,
    filter_by_length,
    tokenize_pairs,
    tokenize_sft,
)

META_KEY = b"stylized_dpo"
SHARD_COLUMNS = {
    "sft": ("prompt_id", "prompt_ids", "completion_ids"),
    "prefs": ("prompt_id", "prompt_ids", "chosen_ids", "rejected_ids"),
}


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of everything that decides the ids of a rendered chat: the vocabulary and merges,
    the normaliser and pre-tokenizer, the added tokens, the chat template and the special tokens
    the template may print.

    Semantic, not the saved file: transformers rebuilds the same BPE with other default fields
    (e.g. `continuing_subword_prefix` None vs "") when it loads a tokenizer beside a model
    config. Not the eos token either: SFT switches it to `<|im_end|>` for generation, which
    changes no id here.
    """
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model = backend["model"]
    parts = {
        "model": [model.get("type"), model.get("vocab"), model.get("merges")],
        "normalizer": backend.get("normalizer"),
        "pre_tokenizer": backend.get("pre_tokenizer"),
        "added": sorted(tokenizer.get_added_vocab().items()),
        "chat_template": tokenizer.chat_template,
        "bos_token": tokenizer.bos_token,
    }
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def tokenize_file(
    kind: str,
    records_path: str | os.PathLike[str],
    tokenizer: PreTrainedTokenizerBase,
    max_prompt_tokens: int,
    max_completion_tokens: int,
) -> tuple[list[TokenizedChat] | list[TokenizedPair], dict[str, int]]:
    """Read, tokenise and length-filter one SFTExample (`sft`) or PreferencePair (`prefs`) file."""
    if kind == "sft":
        items: list[Any] = tokenize_sft(tokenizer, read_records(records_path, SFTExample))
    elif kind == "prefs":
        items = tokenize_pairs(tokenizer, read_records(records_path, PreferencePair))
        ids = [p.prompt_id for p in items]
        if len(set(ids)) != len(ids):
            raise ValueError(
                f"{records_path}: prompt_id is not unique; reference log-probs are keyed by it"
            )
    else:
        raise ValueError(f"unknown shard kind {kind!r} (sft or prefs)")
    kept, drops = filter_by_length(items, max_prompt_tokens, max_completion_tokens)
    print(f"{records_path}: {len(kept)} kept of {len(items)}, dropped {drops}")
    return kept, drops


def write_shard(
    kind: str,
    records_path: str | os.PathLike[str],
    tokenizer: PreTrainedTokenizerBase,
    out_path: str | os.PathLike[str],
    card_path: str | os.PathLike[str],
    max_prompt_tokens: int,
    max_completion_tokens: int,
) -> dict[str, Any]:
    """Tokenise one records file into a Parquet shard and write its card (JSON); returns it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    kept, drops = tokenize_file(
        kind, records_path, tokenizer, max_prompt_tokens, max_completion_tokens
    )
    columns = SHARD_COLUMNS[kind]
    table = pa.table(
        {
            name: pa.array(
                [getattr(item, name) for item in kept],
                type=pa.string() if name == "prompt_id" else pa.list_(pa.int32()),
            )
            for name in columns
        }
    )
    completions = [c for c in columns if c.endswith("_ids") and c != "prompt_ids"]
    card = {
        "kind": kind,
        "source": str(records_path),
        "source_sha256": sha256_file(records_path),
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
        "max_prompt_tokens": max_prompt_tokens,
        "max_completion_tokens": max_completion_tokens,
        "rows_in": len(kept) + sum(drops.values()),
        "rows_out": len(kept),
        "drops": drops,
        "prompt_tokens": percentiles([len(item.prompt_ids) for item in kept]),
        **{
            f"{name[: -len('_ids')]}_tokens": percentiles([len(getattr(i, name)) for i in kept])
            for name in completions
        },
    }
    table = table.replace_schema_metadata({META_KEY: json.dumps(card).encode("utf-8")})
    with atomic_path(out_path) as tmp:
        pq.write_table(table, tmp)
    write_json(card_path, card)
    return card


def read_shard(
    kind: str,
    path: str | os.PathLike[str],
    tokenizer: PreTrainedTokenizerBase,
    max_prompt_tokens: int,
    max_completion_tokens: int,
) -> list[TokenizedChat] | list[TokenizedPair]:
    """The examples of a shard, after checking it was made by this tokenizer and these limits."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    if META_KEY not in meta:
        raise ValueError(f"{path}: not a tokenised shard (no {META_KEY.decode()} metadata)")
    card = json.loads(meta[META_KEY])
    expected = {
        "kind": kind,
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
        "max_prompt_tokens": max_prompt_tokens,
        "max_completion_tokens": max_completion_tokens,
    }
    for key, value in expected.items():
        if card.get(key) != value:
            raise ValueError(
                f"{path}: shard field {key} is {card.get(key)!r} but this run needs {value!r}: "
                "rebuild the shard with this run's tokenizer and length limits"
            )
    data = table.to_pydict()
    make = TokenizedChat if kind == "sft" else TokenizedPair
    items = [make(*row) for row in zip(*(data[c] for c in SHARD_COLUMNS[kind]), strict=True)]
    print(f"{path}: {len(items)} examples (shard; dropped {card['drops']} when built)")
    return items


def _load(kind: str, path, tokenizer, max_prompt_tokens: int, max_completion_tokens: int):
    if str(path).endswith(".parquet"):
        return read_shard(kind, path, tokenizer, max_prompt_tokens, max_completion_tokens)
    return tokenize_file(kind, path, tokenizer, max_prompt_tokens, max_completion_tokens)[0]


def load_chats(
    path: str | os.PathLike[str],
    tokenizer: PreTrainedTokenizerBase,
    max_prompt_tokens: int,
    max_completion_tokens: int,
) -> list[TokenizedChat]:
    """SFT examples from a shard (`.parquet`) or an SFTExample JSONL file."""
    return _load("sft", path, tokenizer, max_prompt_tokens, max_completion_tokens)


def load_pairs(
    path: str | os.PathLike[str],
    tokenizer: PreTrainedTokenizerBase,
    max_prompt_tokens: int,
    max_completion_tokens: int,
) -> list[TokenizedPair]:
    """Preference pairs from a shard (`.parquet`) or a PreferencePair JSONL file."""
    return _load("prefs", path, tokenizer, max_prompt_tokens, max_completion_tokens)
