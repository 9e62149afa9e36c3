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

import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from stylized_dpo.hashing import sha256_file, tokenizer_fingerprint
from stylized_dpo.io import atomic_path, read_records, write_json
from stylized_dpo.records import META_KEY, PreferencePair, SFTExample, percentiles
from stylized_dpo.train.tokens import (
    TokenizedChat,
    TokenizedPair,
    filter_by_length,
    tokenize_pairs,
    tokenize_sft,
)

READ_BATCH_ROWS = 2048
"""Rows per Parquet row group and per record batch read: Parquet decodes a whole row group at
once, so this bounds the transient buffers of reading a shard."""
SHARD_COLUMNS = {
    "sft": ("prompt_id", "prompt_ids", "completion_ids"),
    "prefs": ("prompt_id", "prompt_ids", "chosen_ids", "rejected_ids"),
}


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
    """Tokenise one records file into a Parquet shard and write its card (JSON); returns it.

    Tokenised `READ_BATCH_ROWS` records at a time, each chunk written as a row group, so the
    job holds the records and one chunk's ids, not the whole file's as Python lists.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if kind not in SHARD_COLUMNS:
        raise ValueError(f"unknown shard kind {kind!r} (sft or prefs)")
    records: list[Any] = read_records(records_path, SFTExample if kind == "sft" else PreferencePair)
    if kind == "prefs" and len({r.prompt_id for r in records}) != len(records):
        raise ValueError(
            f"{records_path}: prompt_id is not unique; reference log-probs are keyed by it"
        )
    columns = SHARD_COLUMNS[kind]
    schema = pa.schema(
        [(c, pa.string() if c == "prompt_id" else pa.list_(pa.int32())) for c in columns]
    )
    lengths: dict[str, list[int]] = {c: [] for c in columns[1:]}
    drops = {"prompt_too_long": 0, "completion_too_long": 0}
    with atomic_path(out_path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, len(records), READ_BATCH_ROWS):
            chunk = records[start : start + READ_BATCH_ROWS]
            items: list[Any] = (tokenize_sft if kind == "sft" else tokenize_pairs)(tokenizer, chunk)
            kept, chunk_drops = filter_by_length(
                items, max_prompt_tokens, max_completion_tokens, require_kept=False
            )
            for reason, n in chunk_drops.items():
                drops[reason] += n
            for c in lengths:
                lengths[c] += [len(getattr(item, c)) for item in kept]
            if kept:
                table = pa.table(
                    {c: [getattr(item, c) for item in kept] for c in columns}, schema=schema
                )
                writer.write_table(table, row_group_size=READ_BATCH_ROWS)
        rows_out = len(lengths["prompt_ids"])
        if not rows_out:
            raise ValueError(f"{records_path}: the length filters dropped every example ({drops})")
        print(f"{records_path}: {rows_out} kept of {len(records)}, dropped {drops}")
        card = {
            "kind": kind,
            "source": str(records_path),
            "source_sha256": sha256_file(records_path),
            "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
            "max_prompt_tokens": max_prompt_tokens,
            "max_completion_tokens": max_completion_tokens,
            "rows_in": len(records),
            "rows_out": rows_out,
            "drops": drops,
            **{f"{c[: -len('_ids')]}_tokens": percentiles(n) for c, n in lengths.items()},
        }
        writer.add_key_value_metadata({META_KEY: json.dumps(card).encode("utf-8")})
    write_json(card_path, card)
    return card


class Shard(Sequence[Any]):
    """The examples of one shard as flat int32 token arrays plus row offsets, one pair per token
    column: about 4 bytes per token, where Python int lists cost ~50. An example becomes a
    TokenizedChat / TokenizedPair (Python lists) only when it is indexed, for the batch that
    needs it.

    Indices are the shard's row numbers. `lengths` (per column, every row) is read first; the
    tokens are read on first access, or by `keep(rows)` for only the rows a process will use
    (its share of a DDP run); indexing a row it does not hold is an error.
    """

    def __init__(
        self,
        kind: str,
        ids: list[str],
        lengths: dict[str, np.ndarray],
        reader: Callable[[np.ndarray | None], dict[str, np.ndarray]],
    ):
        self.kind = kind
        self.ids = ids
        """prompt_id of every row."""
        self.lengths = lengths
        """Tokens per row of each token column (`prompt_ids`, `completion_ids`, ...), int64."""
        self._reader = reader
        self._rows: np.ndarray | None = None  # held rows (sorted); None: all
        self._values: dict[str, np.ndarray] | None = None
        self._offsets: dict[str, np.ndarray] = {}

    @property
    def columns(self) -> tuple[str, ...]:
        return SHARD_COLUMNS[self.kind][1:]

    def __len__(self) -> int:
        return len(self.ids)

    def batch_lengths(self) -> np.ndarray:
        """The length each row is batched by: prompt + completion, or prompt + the longer
        answer of a pair."""
        answers = [self.lengths[c] for c in self.columns[1:]]
        return self.lengths["prompt_ids"] + np.maximum.reduce(answers)

    def keep(self, rows: Iterable[int] | None) -> None:
        """Hold the tokens of `rows` only (all rows for None), reading them now."""
        self._rows = None if rows is None else np.unique(np.fromiter(rows, dtype=np.int64))
        self._values = self._reader(self._rows)
        held = np.arange(len(self)) if self._rows is None else self._rows
        self._offsets = {
            c: np.concatenate([[0], np.cumsum(self.lengths[c][held])]) for c in self.columns
        }

    def held_tokens(self) -> int:
        return sum(int(v.size) for v in (self._values or {}).values())

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        if self._values is None:
            self.keep(None)
        assert self._values is not None
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = int(i) % len(self)
        pos = i
        if self._rows is not None:
            pos = int(np.searchsorted(self._rows, i))
            if pos == len(self._rows) or self._rows[pos] != i:
                raise KeyError(f"row {i} of the shard is not held by this process (keep)")
        parts = [
            self._values[c][self._offsets[c][pos] : self._offsets[c][pos + 1]].tolist()
            for c in self.columns
        ]
        make = TokenizedChat if self.kind == "sft" else TokenizedPair
        return make(self.ids[i], *parts)

    @classmethod
    def from_items(cls, kind: str, items: Sequence[Any]) -> Shard:
        """A shard of in-memory examples (a JSONL file tokenised on the spot)."""
        columns = SHARD_COLUMNS[kind][1:]
        lengths = {
            c: np.array([len(getattr(x, c)) for x in items], dtype=np.int64) for c in columns
        }
        values = {
            c: np.fromiter(
                (t for x in items for t in getattr(x, c)), dtype=np.int32, count=int(n.sum())
            )
            for c, n in lengths.items()
        }

        def read(rows: np.ndarray | None) -> dict[str, np.ndarray]:
            if rows is None:
                return values
            return {c: _take_rows(values[c], lengths[c], rows) for c in columns}

        return cls(kind, [x.prompt_id for x in items], lengths, read)


def _take_rows(values: np.ndarray, lengths: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The concatenated tokens of `rows` (sorted) of a flat column."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[rows]
    counts = lengths[rows]
    out = np.empty(int(counts.sum()), dtype=np.int32)
    pos = 0
    for start, count in zip(starts.tolist(), counts.tolist(), strict=True):
        out[pos : pos + count] = values[start : start + count]
        pos += count
    return out


def read_shard(
    kind: str,
    path: str | os.PathLike[str],
    tokenizer: PreTrainedTokenizerBase,
    max_prompt_tokens: int,
    max_completion_tokens: int,
) -> Shard:
    """The examples of a shard, after checking it was made by this tokenizer and these limits.

    Reads the row lengths now (record batch by record batch, no per-token Python object) and
    the tokens when the shard is first indexed or `keep` is called.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path, pre_buffer=False)
    meta = file.metadata.metadata or {}
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
    id_col, *columns = SHARD_COLUMNS[kind]
    ids: list[str] = file.read(columns=[id_col]).column(id_col).to_pylist()
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    for batch in file.iter_batches(batch_size=READ_BATCH_ROWS, columns=columns, use_threads=False):
        for c in columns:
            lengths = pc.list_value_length(batch.column(c)).to_numpy(zero_copy_only=False)
            parts[c].append(lengths.astype(np.int64))
    lengths = {c: np.concatenate(p) if p else np.zeros(0, np.int64) for c, p in parts.items()}

    def read(rows: np.ndarray | None) -> dict[str, np.ndarray]:
        held = np.arange(len(ids)) if rows is None else rows
        out = {c: np.empty(int(lengths[c][held].sum()), dtype=np.int32) for c in columns}
        pos = dict.fromkeys(columns, 0)
        start = 0
        for batch in file.iter_batches(
            batch_size=READ_BATCH_ROWS, columns=columns, use_threads=False
        ):
            lo, hi = np.searchsorted(held, [start, start + batch.num_rows])
            local = held[lo:hi] - start
            start += batch.num_rows
            if not local.size:
                continue
            for c in columns:
                column = batch.column(c)
                if local.size < batch.num_rows:
                    column = column.take(local)
                flat = column.flatten().to_numpy(zero_copy_only=False)
                out[c][pos[c] : pos[c] + flat.size] = flat
                pos[c] += flat.size
        return out

    print(f"{path}: {len(ids)} examples (shard; dropped {card['drops']} when built)")
    return Shard(kind, ids, lengths, read)


def shard_ids(path: str | os.PathLike[str]) -> list[str]:
    """The prompt_ids of a shard's rows (its one string column; no tokens are read)."""
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["prompt_id"]).column("prompt_id").to_pylist()


def batch_lengths(items: Sequence[Any]) -> list[int]:
    """The length each example is batched by (`Shard.batch_lengths`), for a shard or a list."""
    if isinstance(items, Shard):
        return items.batch_lengths().tolist()
    if items and isinstance(items[0], TokenizedChat):
        return [len(c.input_ids) for c in items]
    return [len(p.prompt_ids) + max(len(p.chosen_ids), len(p.rejected_ids)) for p in items]


def completion_tokens(chats: Sequence[Any], micro_batches: list[list[int]]) -> int:
    """Completion tokens of the SFT examples of one step (of every process's micro-batches)."""
    if isinstance(chats, Shard):
        return int(sum(chats.lengths["completion_ids"][mb].sum() for mb in micro_batches))
    return sum(len(chats[i].completion_ids) for mb in micro_batches for i in mb)


def example_ids(items: Sequence[Any]) -> list[str]:
    """prompt_id of every example, without reading a shard's tokens."""
    return items.ids if isinstance(items, Shard) else [x.prompt_id for x in items]


def keep_share(items: Sequence[Any], schedule: list[list[list[int]]], dist: Any) -> None:
    """Under torchrun, hold only the rows of this process's micro-batches (`Dist.step_share`)
    of a shard: each process keeps about 1/W of the tokens. Nothing to do in one process."""
    if isinstance(items, Shard) and dist.enabled:
        items.keep(i for step in schedule for mb in dist.step_share(step)[0] for i in mb)


def _load(kind: str, path, tokenizer, max_prompt_tokens: int, max_completion_tokens: int):
    if str(path).endswith(".parquet"):
        return read_shard(kind, path, tokenizer, max_prompt_tokens, max_completion_tokens)
    items = tokenize_file(kind, path, tokenizer, max_prompt_tokens, max_completion_tokens)[0]
    return Shard.from_items(kind, items)


def load_chats(
    path: str | os.PathLike[str],
    tokenizer: PreTrainedTokenizerBase,
    max_prompt_tokens: int,
    max_completion_tokens: int,
) -> Shard:
    """SFT examples from a shard (`.parquet`) or an SFTExample JSONL file."""
    return _load("sft", path, tokenizer, max_prompt_tokens, max_completion_tokens)


def load_pairs(
    path: str | os.PathLike[str],
    tokenizer: PreTrainedTokenizerBase,
    max_prompt_tokens: int,
    max_completion_tokens: int,
) -> Shard:
    """Preference pairs from a shard (`.parquet`) or a PreferencePair JSONL file."""
    return _load("prefs", path, tokenizer, max_prompt_tokens, max_completion_tokens)
