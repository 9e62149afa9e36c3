"""Rewrite the chosen answers of a preference set in a style: sharded, resumable, filtered.

`rewrite_prefs` reads `PreferencePair`s, asks a generator backend to rewrite each chosen answer
in the style of a style file, and writes the rewritten pairs (the rejected answer is kept, as in
the paper, section 3.2). Every row carries provenance.

Only what the study trains on is rewritten: given `keep_ids` (the prompt_ids of the policy's
length-filtered UltraFeedback shard), the other rows are counted as skipped
(`not_in_policy_shard`). A backend that can `check` requests (vllm) sets aside those that do
not fit its context (`over_context`, counted, never sent).

Resuming. Each answered row is appended to a JSONL cache as it arrives (one line, written,
flushed and fsynced: a kill loses at most the rows in flight), keyed by a hash of the row
(prompt_id, prompt, chosen answer), the style prompt hash and the generator settings. Batches
are fixed slices of the input, so a restarted run requests exactly the rows not yet in the
cache, with the same seeds (transformers, which samples a batch with one generator, redoes the
whole batch). A line cut short by a kill is discarded on restart, with a warning. The final file
is assembled from the cache in input order and written atomically, so it is identical whether
or not the run was interrupted. A row that fails on its own (`RowFailure`) is counted and left
out, not cached; it never fails its batch.

Quality filters, each a counted drop: empty rewrite, truncated (finish_reason `length`),
refusal (the rewrite refuses while the original answer did not), verbatim copy of the original.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from stylized_dpo.hashing import row_key, row_seed
from stylized_dpo.io import DataError, decode_line, read_records, write_json, write_jsonl
from stylized_dpo.records import PreferencePair
from stylized_dpo.synth.backends import GENERATORS, SynthConfig, make_backend
from stylized_dpo.synth.generator import Completion, Request, RowFailure, stream
from stylized_dpo.synth.styles import StyleSpec

DROP_REASONS = ("empty", "truncated", "refusal", "verbatim_copy")
SKIP_SHARD = "not_in_policy_shard"
SKIP_REASONS = (SKIP_SHARD, "over_context")

REFUSAL = re.compile(
    r"^\W*(?:i'?m sorry|i am sorry|sorry, (?:but )?i|i cannot|i can'?t|i can not|"
    r"i won'?t|i will not|i am unable|i'?m unable|i'?m not able|i am not able|"
    r"as an ai\b|as a language model|i must decline|i'?m afraid i can'?t)",
    re.IGNORECASE,
)
"""A rewrite that opens with one of these is a refusal (checked on the first 200 characters)."""


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def quality_check(original: str, completion: Completion) -> str | None:
    """The drop reason of a rewrite, or None when it passes."""
    text = completion.text.strip()
    if not text:
        return "empty"
    if completion.finish_reason == "length":
        return "truncated"
    if REFUSAL.match(text[:200]) and not REFUSAL.match(original.strip()[:200]):
        return "refusal"
    if _normal(text) == _normal(original):
        return "verbatim_copy"
    return None


class Cache:
    """Append-only JSONL of finished rows: {key, text, finish_reason}."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, Completion] = {}
        self.duplicates = 0
        self.discarded_partial_line = False
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a line cut short by a kill: drop it before appending again
            self.discarded_partial_line = True
            print(
                f"warning: {self.path}: discarding a last line cut short "
                f"({len(data) - end} bytes; that row is requested again)",
                flush=True,
            )
            with open(self.path, "r+b") as f:
                f.truncate(end)
            data = data[:end]
        for lineno, raw in enumerate(data.splitlines(), start=1):
            try:
                obj = json.loads(decode_line(raw, lineno))
                key, text, reason = obj["key"], obj["text"], obj["finish_reason"]
                if not (isinstance(key, str) and isinstance(text, str) and isinstance(reason, str)):
                    raise TypeError("key, text and finish_reason must be strings")
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
                raise DataError(
                    self.path,
                    lineno,
                    None,
                    f"corrupt cache line ({e}); delete the cache to regenerate",
                ) from e
            if key in self.entries:
                self.duplicates += 1
                continue
            self.entries[key] = Completion(text, reason)

    def append(self, items: list[tuple[str, Completion]]) -> None:
        """Append rows with one write, then flush and fsync it (a kill leaves at most a torn
        last line, which `_load` discards)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(
            json.dumps(
                {"key": k, "text": c.text, "finish_reason": c.finish_reason}, ensure_ascii=False
            )
            + "\n"
            for k, c in items
        )
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())
        for k, c in items:
            self.entries[k] = c


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def rewrite_prefs(
    pairs_path: str | Path,
    style: StyleSpec,
    cfg: SynthConfig,
    out_path: str | Path,
    cache_path: str | Path,
    card_path: str | Path | None = None,
    backend: Any = None,
    keep_ids: Collection[str] | None = None,
) -> dict[str, Any]:
    """Rewrite the chosen answers of `pairs_path` in `style`; returns the run card.

    With `keep_ids`, only the rows with those prompt_ids are rewritten (the rest are counted
    as skipped, `not_in_policy_shard`)."""
    start = time.perf_counter()
    pairs = read_records(pairs_path, PreferencePair)
    identity = cfg.identity()
    keys = [row_key(p, style, identity) for p in pairs]
    if len(set(keys)) != len(keys):
        raise DataError(pairs_path, None, "prompt_id", "duplicate rows (same prompt_id and text)")
    skipped: dict[str, str] = {}  # key -> reason (and detail)
    if keep_ids is not None:
        keep = set(keep_ids)
        for p, k in zip(pairs, keys, strict=True):
            if p.prompt_id not in keep:
                skipped[k] = "not_in_policy_shard"
    cache = Cache(cache_path)
    from_cache = sum(k in cache.entries for k in keys if k not in skipped)
    requests = [
        Request(
            key=k,
            prompt_id=p.prompt_id,
            messages=style.messages(p.prompt, p.chosen),
            style=style.name,
            answer=p.chosen,
            seed=row_seed(cfg.seed, k),
        )
        for p, k in zip(pairs, keys, strict=True)
        if k not in skipped
    ]
    generated = 0
    failed: dict[str, RowFailure] = {}
    todo = [
        b for b in _batches(requests, cfg.batch_size) if any(r.key not in cache.entries for r in b)
    ]
    if todo:
        backend = backend or make_backend(cfg)
        check = getattr(backend, "check", None)
        for batch in tqdm(todo, desc=f"rewrite {style.name}", unit="batch"):
            missing = [r for r in batch if r.key not in cache.entries]
            if check is not None:
                skipped |= check(missing)
                missing = [r for r in missing if r.key not in skipped]
            # a backend that samples a batch with one generator gets it whole, so a restarted
            # run samples exactly what an uninterrupted one would (asked of the configured
            # backend's class: the object passed in may wrap it)
            call = batch if GENERATORS[cfg.backend].whole_batches else missing
            if not call:  # every missing row was set aside
                continue
            for i, result in stream(backend, call):
                key = call[i].key
                if key in cache.entries:
                    continue
                if isinstance(result, RowFailure):
                    failed[key] = result
                    continue
                cache.append([(key, result)])
                generated += 1

    sampling = cfg.sampling()
    out_rows: list[PreferencePair] = []
    drops: Counter[str] = Counter()
    examples: dict[str, dict[str, str]] = {}
    skip_counts: Counter[str] = Counter(reason.split(":")[0] for reason in skipped.values())
    skip_examples: dict[str, dict[str, str]] = {}
    for pair, key in zip(pairs, keys, strict=True):
        if key in skipped:
            kind = skipped[key].split(":")[0]
            skip_examples.setdefault(kind, {"prompt_id": pair.prompt_id, "why": skipped[key]})
            continue
        if key in failed:
            examples.setdefault(
                f"failed_{failed[key].reason}",
                {"prompt_id": pair.prompt_id, "text": failed[key].message[:300]},
            )
            continue
        completion = cache.entries[key]
        reason = quality_check(pair.chosen, completion)
        if reason is not None:
            drops[reason] += 1
            examples.setdefault(
                reason, {"prompt_id": pair.prompt_id, "text": completion.text[:300]}
            )
            continue
        out_rows.append(
            replace(
                pair,
                chosen=completion.text.strip(),
                provenance={
                    "backend": cfg.backend,
                    "generator_model": cfg.model or "rules (phrase banks, synth/rules.py)",
                    "style": style.name,
                    "style_prompt_hash": style.prompt_hash,
                    "sampling": sampling,
                    "seed": row_seed(cfg.seed, key),
                    "finish_reason": completion.finish_reason,
                    "original_chosen": pair.chosen,
                },
            )
        )
    fail_counts = Counter(f.reason for f in failed.values())
    n_drops = sum(drops.values())
    # rows the study never trains on are not losses; every other row not written is
    n_lost = n_drops + len(failed) + sum(n for k, n in skip_counts.items() if k != SKIP_SHARD)
    card = {
        "style": style.name,
        "style_prompt_hash": style.prompt_hash,
        "input": str(pairs_path),
        "output": str(out_path),
        "generator": identity,
        "rows_in": len(pairs),
        "rows_out": len(out_rows),
        "drops": {r: drops.get(r, 0) for r in DROP_REASONS},
        "drops_total": n_drops,
        "drop_examples": examples,
        "skipped": {r: skip_counts.get(r, 0) for r in SKIP_REASONS},
        "skip_examples": skip_examples,
        "failed": dict(sorted(fail_counts.items())),
        "generated_this_run": generated,
        "from_cache": from_cache,
        "cache": str(cache_path),
        "cache_duplicate_lines": cache.duplicates,
        "cache_partial_line_discarded": cache.discarded_partial_line,
        "retries": dict(getattr(backend, "retries", {}) or {}),
        "seconds": round(time.perf_counter() - start, 3),
    }
    n_wanted = len(pairs) - skip_counts.get(SKIP_SHARD, 0)
    if n_lost > cfg.max_drop_fraction * n_wanted:
        raise DataError(
            pairs_path,
            None,
            None,
            f"{n_lost} of {n_wanted} rewrites failed the quality filters "
            f"({card['drops']}), failed ({card['failed']}) or did not fit the generator "
            f"({card['skipped']}), more than synth.max_drop_fraction="
            f"{cfg.max_drop_fraction}; examples: {examples | skip_examples}",
        )
    write_jsonl(out_path, out_rows)
    if card_path is not None:
        write_json(card_path, card)
    print(
        f"{style.name}: {len(out_rows)} rows out of {len(pairs)}, drops {card['drops']}, "
        f"skipped {card['skipped']}, failed {card['failed']}, "
        f"{generated} generated, {from_cache} from cache, {card['seconds']} s",
        flush=True,
    )
    return card
