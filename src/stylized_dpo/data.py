"""Read SFT chats and preference pairs from the hub or from local files, and validate and convert
every row (`data_prepare` loads whole splits and writes them with a data card).

One loader path serves three sources (config `data.sft.source`, `data.prefs.source`):
- `hub`: `datasets.load_dataset(name, split=..., revision=...)`, e.g. `HuggingFaceTB/smol-smoltalk`
  (`train`/`test`) and `HuggingFaceH4/ultrafeedback_binarized` (`train_prefs`/`test_prefs`);
- `local`: JSONL or Parquet files in the same schemas (`path`: a file with `{split}` in its name,
  or a folder holding `<split>.jsonl` / `<split>.parquet`);
- `world`: the tiny world's files (results/world/...), read exactly as `local`.

Conversion follows the paper (section 3.1): a smol-smoltalk chat becomes a single-turn
`SFTExample` (optional system message, the first user turn, the first assistant turn after it); an
UltraFeedback row becomes a `PreferencePair` whose chosen/rejected texts are the last assistant
message of `chosen`/`rejected`.

Every row is validated. A bad row (malformed JSON, non-UTF-8 bytes, missing field, wrong type,
empty message, a lone surrogate escape, roles out of the schema's order, no user/assistant turn,
duplicate prompt_id, identical chosen and rejected, a NaN or infinite score) raises `DataError`
naming the file, line (row number for hub and Parquet sources) and field, unless
`drop_invalid: true`, in which case it is dropped and counted by reason in the data card. A file
may start with a UTF-8 byte-order mark.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from stylized_dpo.config import Section
from stylized_dpo.hashing import sha256_file, stable_id
from stylized_dpo.io import DataError, decode_line
from stylized_dpo.records import PreferencePair, Record, SFTExample, lone_surrogate

SOURCES = ("world", "local", "hub")


@dataclass(frozen=True)
class DataSourceConfig(Section):
    """Where one dataset comes from (config `data.sft` or `data.prefs`)."""

    section: ClassVar[str] = "data.sft"

    source: str = "world"
    """`world` (the generated tiny world), `local` (files in the hub schema) or `hub`."""
    name: str | None = None
    """Hub dataset name (`hub`); recorded in the card for the other sources."""
    path: str | None = None
    """`local`/`world`: a file path containing `{split}`, or a folder with `<split>.jsonl` or
    `<split>.parquet`."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) to pin; None takes the default branch."""
    splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "test": "test"})
    """Output split -> source split (UltraFeedback: {train: train_prefs, test: test_prefs})."""
    max_rows: int | None = None
    """Cap on valid rows kept per split (the first ones in source order); None keeps all."""
    drop_invalid: bool = False
    """False: the first bad row raises DataError. True: bad rows are dropped and counted."""
    tokenizer: str | None = None
    """Tokenizer (path or hub name) for the card's length statistics; None counts whitespace
    words."""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"data source must be one of {SOURCES}, got {self.source!r}")
        if self.source == "hub" and not self.name:
            raise ValueError("data source 'hub' needs a dataset `name`")
        if self.source in ("local", "world") and not self.path:
            raise ValueError(f"data source {self.source!r} needs a `path`")
        if self.max_rows is not None and self.max_rows < 1:
            raise ValueError(f"max_rows must be positive or null, got {self.max_rows}")


DEFAULT_SPLITS = {
    "sft": {"train": "train", "test": "test"},
    "prefs": {"train": "train_prefs", "test": "test_prefs"},
}
"""Output split -> source split of smol-smoltalk and ultrafeedback_binarized."""
WORLD_FOLDERS = {"sft": "smoltalk", "prefs": "ultrafeedback"}
"""Where the world writes each dataset, under the world folder."""


def source_config(
    cfg: dict[str, Any], kind: str, world_dir: str = "results/world"
) -> DataSourceConfig:
    """A DataSourceConfig from config `data.sft`/`data.prefs`; `world` reads `world_dir`."""
    values = dict(cfg)
    values.setdefault("splits", DEFAULT_SPLITS[kind])
    if values.get("splits") is None:
        values["splits"] = DEFAULT_SPLITS[kind]
    if values.get("source") == "world":
        values["path"] = str(Path(world_dir) / WORLD_FOLDERS[kind])
    return DataSourceConfig.from_dict(values, f"data.{kind}")


def source_paths(cfg: DataSourceConfig) -> dict[str, str]:
    """Output split -> local input file (empty for the hub): the inputs of a prepare rule."""
    if cfg.source == "hub":
        return {}
    return {split: str(source_file(cfg, src)) for split, src in cfg.splits.items()}


class RowError(Exception):
    """A bad row: `reason` is the drop category, `field` the offending field."""

    def __init__(self, reason: str, field_name: str | None, message: str):
        super().__init__(message)
        self.reason = reason
        self.field = field_name
        self.message = message


# ---------------------------------------------------------------------------------------------
# Reading rows


@dataclass
class _RawRow:
    where: str
    """File path or hub identifier."""
    line: int
    """1-based line (JSONL) or row number (Parquet, hub)."""
    value: Any = None
    error: RowError | None = None


def source_file(cfg: DataSourceConfig, source_split: str) -> Path:
    """The local file of one split (for `local` and `world` sources)."""
    assert cfg.path is not None
    if "{split}" in cfg.path:
        return Path(cfg.path.format(split=source_split))
    folder = Path(cfg.path)
    for ext in (".jsonl", ".parquet"):
        candidate = folder / f"{source_split}{ext}"
        if candidate.exists():
            return candidate
    return folder / f"{source_split}.jsonl"


def _iter_jsonl(path: Path) -> Iterator[_RawRow]:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                text = decode_line(raw, lineno)
            except UnicodeDecodeError as e:
                err = RowError("not_utf8", None, f"not valid UTF-8 ({e.reason} at byte {e.start})")
                yield _RawRow(str(path), lineno, error=err)
                continue
            if not text.strip():
                continue
            try:
                yield _RawRow(str(path), lineno, json.loads(text))
            except json.JSONDecodeError as e:
                err = RowError(
                    "malformed_json", None, f"malformed JSON: {e.msg} (column {e.colno})"
                )
                yield _RawRow(str(path), lineno, error=err)


def _iter_parquet(path: Path) -> Iterator[_RawRow]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        for value in batch.to_pylist():
            row += 1
            yield _RawRow(str(path), row, value)


def _iter_hub(cfg: DataSourceConfig, source_split: str) -> Iterator[_RawRow]:
    import datasets

    ds = datasets.load_dataset(cfg.name, split=source_split, revision=cfg.revision)
    where = f"hub:{cfg.name}@{cfg.revision or 'default'}[{source_split}]"
    for i, value in enumerate(ds, start=1):
        yield _RawRow(where, i, value)


def source_info(cfg: DataSourceConfig, source_split: str) -> dict[str, Any]:
    if cfg.source == "hub":
        return {
            "source": "hub",
            "name": cfg.name,
            "revision": cfg.revision or "default branch",
            "split": source_split,
        }
    path = source_file(cfg, source_split)
    return {
        "source": cfg.source,
        "name": cfg.name,
        "path": str(path),
        "split": source_split,
        "sha256": sha256_file(path),
    }


def iter_rows(cfg: DataSourceConfig, source_split: str) -> Iterator[_RawRow]:
    if cfg.source == "hub":
        return _iter_hub(cfg, source_split)
    path = source_file(cfg, source_split)
    if not path.exists():
        raise DataError(path, None, None, "file not found")
    return _iter_parquet(path) if path.suffix == ".parquet" else _iter_jsonl(path)


# ---------------------------------------------------------------------------------------------
# Converting rows


def _require(row: Any, name: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    if not isinstance(row, dict):
        raise RowError(
            "wrong_type", where or "<row>", f"expected a JSON object, got {type(row).__name__}"
        )
    label = f"{where}.{name}" if where else name
    if name not in row or row[name] is None:
        raise RowError("missing_field", label, "is missing")
    value = row[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise RowError("wrong_type", label, f"expected {expected}, got {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise RowError("empty_message", label, "is empty")
    if isinstance(value, str) and lone_surrogate(value):
        raise RowError("lone_surrogate", label, f"holds {lone_surrogate(value)}: not valid Unicode")
    return value


def _messages(row: dict[str, Any], name: str) -> list[tuple[str, str]]:
    """Validated (role, content) pairs of a message list field."""
    messages = _require(row, name, list)
    out = []
    for i, msg in enumerate(messages):
        where = f"{name}[{i}]"
        role = _require(msg, "role", str, where)
        content = _require(msg, "content", str, where)
        out.append((role, content))
    if not out:
        raise RowError("empty_message", name, "has no messages")
    return out


SFT_ROLES = ("system", "user", "assistant")
"""smol-smoltalk's roles: an optional system message first, then user and assistant turns
alternating, from the user."""
PAIR_ROLES = ("user", "assistant")
"""ultrafeedback_binarized's `chosen` and `rejected`: the prompt as the user's turn, then the
answer. A longer conversation would make the pair's answer reply to something else than its
`prompt`, a system message would be lost: both are errors."""


def _check_sft_roles(messages: list[tuple[str, str]]) -> None:
    start = 1 if messages[0][0] == "system" else 0
    for i, (role, _) in enumerate(messages):
        where = f"messages[{i}].role"
        if role not in SFT_ROLES:
            raise RowError("bad_role", where, f"{role!r} is not one of {', '.join(SFT_ROLES)}")
        if i < start:
            continue
        expected = PAIR_ROLES[(i - start) % 2]
        if role == "system":
            raise RowError("bad_role", where, "a system message may only come first")
        if role != expected:
            after = f"after a {messages[i - 1][0]} message" if i else "first"
            raise RowError(
                "bad_role", where, f"expected {expected!r} {after} (turns alternate), got {role!r}"
            )
    if len(messages) - start < 1:
        raise RowError("no_turn", "messages", "has no user message")
    if len(messages) - start < 2:
        raise RowError("no_turn", "messages", "has no assistant message after the user one")


def smoltalk_to_sft(row: Any) -> SFTExample:
    """A smol-smoltalk chat -> one turn: optional system, first user, the assistant's answer."""
    messages = _messages(row, "messages")
    _check_sft_roles(messages)
    system = messages[0][1] if messages[0][0] == "system" else None
    start = 1 if system is not None else 0
    user, assistant = messages[start][1], messages[start + 1][1]
    prompt_id = row.get("prompt_id")
    if prompt_id is None:
        prompt_id = stable_id(system or "", user, assistant)
    elif not isinstance(prompt_id, str) or not prompt_id.strip():
        raise RowError("wrong_type", "prompt_id", "expected a non-empty string")
    return SFTExample(prompt_id=prompt_id, user=user, assistant=assistant, system=system)


def _pair_answer(row: dict[str, Any], side: str, prompt: str) -> str:
    """The answer of one side of an UltraFeedback row, checked to be [user: prompt, assistant]."""
    messages = _messages(row, side)
    for i, (role, _) in enumerate(messages[: len(PAIR_ROLES)]):
        if role != PAIR_ROLES[i]:
            raise RowError(
                "bad_role",
                f"{side}[{i}].role",
                f"expected {PAIR_ROLES[i]!r} ({side} is [user, assistant]), got {role!r}",
            )
    if len(messages) == 1:
        raise RowError("no_turn", side, "has no assistant message after the user one")
    if len(messages) > 2:
        raise RowError(
            "bad_role",
            f"{side}[2].role",
            f"{side} has {len(messages)} messages; a pair is one turn: [user, assistant]",
        )
    if messages[0][1].strip() != prompt.strip():
        raise RowError("prompt_mismatch", f"{side}[0].content", "differs from the row's prompt")
    return messages[1][1]


def _score(row: dict[str, Any], name: str) -> float | None:
    if row.get(name) is None:
        return None
    value = float(_require(row, name, (int, float)))
    if not math.isfinite(value):
        raise RowError("invalid_score", name, f"is {value}, not a finite number")
    return value


def score_order(row: Any) -> str:
    """How a valid UltraFeedback row's scores order its answers: `ordered` (chosen above
    rejected), `tied`, `inverted` (chosen below rejected) or `unscored`."""
    chosen, rejected = _score(row, "score_chosen"), _score(row, "score_rejected")
    if chosen is None or rejected is None:
        return "unscored"
    return "ordered" if chosen > rejected else "tied" if chosen == rejected else "inverted"


def ultrafeedback_to_pair(row: Any) -> PreferencePair:
    """An ultrafeedback_binarized row -> PreferencePair (the assistant message of each side)."""
    prompt_id = _require(row, "prompt_id", str)
    prompt = _require(row, "prompt", str)
    texts = {side: _pair_answer(row, side, prompt) for side in ("chosen", "rejected")}
    score_order(row)  # NaN, infinite or non-numeric scores are bad rows
    if texts["chosen"].strip() == texts["rejected"].strip():
        raise RowError("chosen_equals_rejected", "rejected", "is identical to the chosen answer")
    return PreferencePair(prompt_id, prompt, texts["chosen"], texts["rejected"])


CONVERTERS: dict[str, Callable[[Any], Record]] = {
    "sft": smoltalk_to_sft,
    "prefs": ultrafeedback_to_pair,
}
