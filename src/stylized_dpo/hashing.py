"""Every content hash, digest and seed derived from text in the package, in one place.

Each value here is a contract: it names a cache entry, a checkpoint's config, a row's identity
or a random draw, and is written to files or compared with values from earlier runs. A change
to any of them invalidates caches and moves seeds, so they change only deliberately.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from stylized_dpo.records import PreferencePair

_BLOCK = 1 << 20  # bytes read at a time from a file being hashed


# ----------------------------------------------------------------------------------------------
# Files.


def sha256_file(path: str | os.PathLike[str]) -> str:
    """sha256 (hex) of a file's bytes, read a block at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def files_digest(*paths: str | os.PathLike[str]) -> str:
    """A content hash of input files (every file under a directory), for checkpoint fingerprints:
    a checkpoint made from other data or another starting model is never resumed."""
    h = hashlib.sha256()
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            h.update(file.name.encode())
            with open(file, "rb") as f:
                for block in iter(lambda: f.read(_BLOCK), b""):  # noqa: B023
                    h.update(block)
    return h.hexdigest()[:16]


def concat_digest(paths: Iterable[str | os.PathLike[str]], algorithm: str = "sha256") -> str:
    """The hex digest of the files' bytes, concatenated in the order given (no names)."""
    h = hashlib.new(algorithm)
    for path in paths:
        h.update(Path(path).read_bytes())
    return h.hexdigest()


def snapshot_commit(listing: list[str]) -> str:
    """A 40-hex commit id (sha1, the length of the hub's) of a snapshot's file listing."""
    return hashlib.sha1("\n".join(listing).encode()).hexdigest()


# ----------------------------------------------------------------------------------------------
# Configs, texts and requests.


def config_fingerprint(*parts: Any) -> str:
    """A hash of everything that changes a run's result; a checkpoint resumes only on a match."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def json_digest_int(value: Any) -> int:
    """An integer (48 bits) digest of a JSON value, independent of its key order."""
    return int(hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12], 16)


def stable_id(*parts: str) -> str:
    """A 16-hex id of the parts, joined by the unit separator (which no part contains)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]


def text_hash(text: str, chars: int = 16) -> str:
    """The first `chars` hex digits (64: all) of the text's sha256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:chars]


def cache_key(*parts: str) -> str:
    """A stable key for a request: sha256 over the parts (model, template hash, inputs), each
    length-prefixed so that no two lists of parts share a key."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def sequence_key(prompt_ids: list[int], answer_ids: list[int]) -> str:
    """The content key of one scored sequence (prompt + answer token ids)."""
    data = json.dumps([prompt_ids, answer_ids], separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:32]


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


# ----------------------------------------------------------------------------------------------
# Style rewrites: the prompt of a style and the identity of a rewritten row.


class _Style(Protocol):
    @property
    def prompt_hash(self) -> str: ...


def style_prompt_hash(name: str, system_prompt: str, instructions: str) -> str:
    """sha256 (16 hex digits) of a style's name, system prompt and instructions."""
    payload = json.dumps([name, system_prompt, instructions], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()[:16]


def row_key(pair: PreferencePair, style: _Style, identity: dict[str, Any]) -> str:
    """The cache key of one rewritten pair: its prompt and chosen answer, the style's prompt
    and the identity of the backend that rewrites it."""
    payload = json.dumps(
        [pair.prompt_id, pair.prompt, pair.chosen, style.prompt_hash, identity],
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


# ----------------------------------------------------------------------------------------------
# Seeds and draws derived from text.


def row_seed(seed: int, key: str) -> int:
    """The sampling seed of one rewritten row: the run's seed and the row's key (`row_key`)."""
    return (seed * 1_000_003 + int(key[:8], 16)) % 2**31


def derive_seed(seed: int, *parts: str) -> int:
    """A 31-bit seed for one batch or request, stable across runs and machines."""
    digest = hashlib.sha256("\x1f".join([str(seed), *parts]).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def pick_index(key: str, n: int) -> int:
    """An index in range(n) drawn by the text `key`: the same key always picks the same one."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % n


def seeded_rng(seed: int, *names: str) -> np.random.Generator:
    """A generator for one quantity (e.g. a model and criterion): independent of run order."""
    return np.random.default_rng([seed, *(zlib.crc32(n.encode("utf-8")) for n in names)])
