"""Prepare a dataset: load each split with its bad rows raised or counted, and write the converted
records with a data card.

The data card gives, per split, rows read and written, drops by reason with the first example,
the `max_rows` cap, how the scores order each pair (chosen above, tied, inverted), length
percentiles and the exact source (hub name and revision, or file path and sha256).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stylized_dpo.data import (
    CONVERTERS,
    DataSourceConfig,
    RowError,
    iter_rows,
    score_order,
    source_file,
    source_info,
)
from stylized_dpo.io import DataError, atomic_path, read_records, write_json, write_jsonl
from stylized_dpo.records import PreferencePair, SFTExample, percentiles

SCORE_EXAMPLES = 5
"""Prompt ids of tied and inverted pairs listed in the data card."""


# ---------------------------------------------------------------------------------------------
# Loading a split, with counted drops


@dataclass
class SplitResult:
    records: list[Any]
    card: dict[str, Any]


def load_split(cfg: DataSourceConfig, kind: str, split: str) -> SplitResult:
    """Read, validate and convert one split; raise DataError on the first bad row unless
    `cfg.drop_invalid`."""
    convert = CONVERTERS[kind]
    source_split = cfg.splits.get(split, split)
    start = time.perf_counter()
    records: list[Any] = []
    drops: Counter[str] = Counter()
    first_drop: dict[str, str] = {}
    seen_ids: dict[str, int] = {}
    score_orders: Counter[str] = Counter()
    score_examples: dict[str, list[str]] = {"tied": [], "inverted": []}
    rows_read = 0
    stopped = False
    for raw in iter_rows(cfg, source_split):
        if cfg.max_rows is not None and len(records) >= cfg.max_rows:
            stopped = True
            break
        rows_read += 1
        err = raw.error
        record = None
        if err is None:
            try:
                record = convert(raw.value)
            except RowError as e:
                err = e
            except ValueError as e:  # a record invariant (RecordError)
                err = RowError("invalid_record", getattr(e, "field", None), str(e))
        if record is not None and record.prompt_id in seen_ids:
            err = RowError(
                "duplicate_prompt_id",
                "prompt_id",
                f"{record.prompt_id!r} already used on line {seen_ids[record.prompt_id]}",
            )
        if err is not None:
            if not cfg.drop_invalid:
                raise DataError(raw.where, raw.line, err.field, err.message)
            drops[err.reason] += 1
            first_drop.setdefault(
                err.reason, str(DataError(raw.where, raw.line, err.field, err.message))
            )
            continue
        seen_ids[record.prompt_id] = raw.line
        records.append(record)
        if kind == "prefs":
            order = score_order(raw.value)
            score_orders[order] += 1
            if order in ("tied", "inverted") and len(score_examples[order]) < SCORE_EXAMPLES:
                score_examples[order].append(record.prompt_id)
    if not records:
        raise DataError(
            _where(cfg, source_split),
            None,
            None,
            f"no valid rows in split {source_split!r} ({rows_read} read)",
        )
    card = {
        "split": split,
        "source": source_info(cfg, source_split),
        "rows_read": rows_read,
        "rows_out": len(records),
        "drops": dict(sorted(drops.items())),
        "drops_total": sum(drops.values()),
        "first_drop_per_reason": first_drop,
        "drop_invalid": cfg.drop_invalid,
        "max_rows": cfg.max_rows,
        "stopped_at_max_rows": stopped,
        "seconds": round(time.perf_counter() - start, 3),
    }
    if kind == "prefs":
        # Kept, not dropped: a tie or an inversion is the dataset's own judgement, but a study
        # of preferences should know how many of its pairs carry no or the opposite preference.
        card["scores"] = {k: score_orders[k] for k in ("ordered", "tied", "inverted", "unscored")}
        card["score_examples"] = score_examples
    assert card["rows_read"] == card["rows_out"] + card["drops_total"]
    return SplitResult(records, card)


def _where(cfg: DataSourceConfig, source_split: str) -> str:
    if cfg.source == "hub":
        return f"hub:{cfg.name}@{cfg.revision or 'default'}[{source_split}]"
    return str(source_file(cfg, source_split))


# ---------------------------------------------------------------------------------------------
# Length statistics and the data card


def length_counter(tokenizer: str | None) -> tuple[Callable[[str], int], str]:
    """A length function and its unit: tokenizer tokens, or whitespace-separated words."""
    if tokenizer is None:
        return (lambda text: len(text.split())), "whitespace words"
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer)
    return (lambda text: len(tok(text, add_special_tokens=False)["input_ids"])), (
        f"tokens ({tokenizer})"
    )


def _fields_for_lengths(kind: str, record: Any) -> dict[str, str]:
    if kind == "sft":
        prompt = f"{record.system}\n{record.user}" if record.system else record.user
        return {"prompt": prompt, "completion": record.assistant}
    return {"prompt": record.prompt, "chosen": record.chosen, "rejected": record.rejected}


def length_stats(kind: str, records: list[Any], count: Callable[[str], int]) -> dict[str, Any]:
    columns: dict[str, list[int]] = {}
    for record in records:
        for name, text in _fields_for_lengths(kind, record).items():
            columns.setdefault(name, []).append(count(text))
    return {name: percentiles(values) for name, values in columns.items()}


def render_card_md(card: dict[str, Any]) -> str:
    lines = [
        f"# Data card: {card['dataset']}",
        "",
        f"Kind: {card['kind']}. Lengths in {card['length_unit']}.",
        "",
    ]
    for split, s in card["splits"].items():
        src = s["source"]
        origin = (
            f"hub `{src['name']}` revision `{src['revision']}` split `{src['split']}`"
            if src["source"] == "hub"
            else f"`{src['path']}` (sha256 `{src['sha256']}`, source `{src['source']}`)"
        )
        lines += [
            f"## {split}",
            "",
            f"- source: {origin}",
            f"- rows read: {s['rows_read']}, rows out: {s['rows_out']}, "
            f"dropped: {s['drops_total']} (drop_invalid: {s['drop_invalid']})",
            f"- max_rows: {s['max_rows']} (stopped at cap: {s['stopped_at_max_rows']})",
            f"- time: {s['seconds']} s",
            "",
        ]
        if "scores" in s:
            sc, examples = s["scores"], s["score_examples"]
            firsts = "".join(f"; first {k}: {', '.join(ids)}" for k, ids in examples.items() if ids)
            lines += [
                f"- scores: chosen above rejected {sc['ordered']}, tied {sc['tied']}, "
                f"inverted (chosen below rejected) {sc['inverted']}, unscored {sc['unscored']}"
                + firsts,
                "",
            ]
        if s["drops"]:
            lines += ["| drop reason | rows | first example |", "|---|---|---|"]
            lines += [
                f"| {r} | {n} | {s['first_drop_per_reason'][r]} |" for r, n in s["drops"].items()
            ]
            lines.append("")
        lines += ["| field | p50 | p90 | p99 | max | mean |", "|---|---|---|---|---|---|"]
        for name, st in s["lengths"].items():
            lines.append(
                f"| {name} | {st['p50']} | {st['p90']} | {st['p99']} | {st['max']} | {st['mean']} |"
            )
        lines.append("")
    return "\n".join(lines)


def prepare(
    kind: str,
    cfg: DataSourceConfig,
    outputs: dict[str, str | Path],
    card_json: str | Path,
    card_md: str | Path,
    dataset: str | None = None,
) -> dict[str, Any]:
    """Load every split in `outputs` (split -> output JSONL), write records and the data card."""
    if kind not in CONVERTERS:
        raise ValueError(f"kind must be one of {sorted(CONVERTERS)}, got {kind!r}")
    count, unit = length_counter(cfg.tokenizer)
    card: dict[str, Any] = {
        "dataset": dataset or kind,
        "kind": "smol-smoltalk chats -> SFTExample"
        if kind == "sft"
        else "ultrafeedback_binarized pairs -> PreferencePair",
        "config": asdict(cfg),
        "length_unit": unit,
        "splits": {},
    }
    for split, out_path in outputs.items():
        result = load_split(cfg, kind, split)
        result.card["lengths"] = length_stats(kind, result.records, count)
        write_jsonl(out_path, result.records)
        card["splits"][split] = result.card
        print(
            f"{card['dataset']}/{split}: {result.card['rows_out']} rows out of "
            f"{result.card['rows_read']} read, drops {result.card['drops']}, "
            f"{result.card['seconds']} s",
            flush=True,
        )
    write_json(card_json, card)
    with atomic_path(card_md) as tmp:
        tmp.write_text(render_card_md(card), encoding="utf-8")
    return card


def chosen_as_sft(pairs_path: str | Path, out_path: str | Path) -> int:
    """The chosen answers of a PreferencePair file as SFTExamples (same prompt ids): SFT on the
    preference data's own distribution before DPO (the paper's limitation 1)."""
    pairs = read_records(pairs_path, PreferencePair)
    n = write_jsonl(out_path, (SFTExample(p.prompt_id, p.prompt, p.chosen) for p in pairs))
    print(f"{pairs_path}: {n} chosen answers -> {out_path}")
    return n
