"""Records that cross file boundaries: one frozen dataclass per `.jsonl` file type (and the
columns of the summary CSVs).

Each record is written with `to_dict` and read back with `from_dict`, so one type describes both
sides of a file (as HELM does with its `Instance`/`RequestState`). Invariants live in
`__post_init__`; a violation raises `RecordError` naming the field, and `io.read_records` adds
the file and line.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from stylized_dpo.config import TypeMismatch, conform

JUDGE_CRITERIA: tuple[str, ...] = ("helpfulness", "relevance", "factuality", "harmlessness")
"""The paper's four LLM-judge criteria (Appendix B.1), each scored 1-5."""

# The summary CSVs have no record type: their writers and the report's readers share the columns.
WIN_RATE_COLUMNS: tuple[str, ...] = (
    "model",
    "baseline",
    "n",
    "wins",
    "ties",
    "losses",
    "win_rate",
    "ci_low",
    "ci_high",
    "mean_len_model",
    "mean_len_baseline",
    "backend",
    "n_failed",
)
"""`results/judge/win_rates.csv` (evals/winrate.py): one row per (model, baseline)."""
WIN_RATE_LC_COLUMNS: tuple[str, ...] = ("lc_win_rate", "lc_ci_low", "lc_ci_high")
"""Length-controlled win rate and its 95% interval, after `WIN_RATE_COLUMNS` in win_rates.csv
(optional for readers: files written before length control lack them)."""
JUDGE_SUMMARY_COLUMNS: tuple[str, ...] = (
    "model",
    "criterion",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "n",
    "n_failed",
)
"""`results/judge/summary.csv` (evals/judge.py): one row per (model, criterion)."""
HELM_FAMILIES: tuple[str, ...] = ("accuracy", "calibration", "robustness", "fairness")
"""The metric families of HELM's summary (the `family` column; one of Tables 4-8 each)."""
HELM_SCENARIOS: tuple[str, ...] = ("mmlu", "boolq", "natural_qa", "quac", "hellaswag")
"""The paper's five HELM scenarios (the `scenario` column)."""
MMLU_CORE_SUBJECTS: tuple[str, ...] = (
    "abstract_algebra",
    "college_chemistry",
    "computer_security",
    "econometrics",
    "us_foreign_policy",
)
"""The MMLU subjects of HELM's core run entries (`run_entries_core_scenarios`); helm-summarize
merges their runs into one MMLU column (each subject's per-trial means weigh equally)."""
HELM_SUMMARY_COLUMNS: tuple[str, ...] = ("model", "family", "scenario", "metric", "value", "note")
"""`results/helm/summary.csv` (evals/helm_summary.py): one row per (model, family, scenario)."""
PUNKT_FILES: tuple[str, ...] = (
    "collocations.tab",
    "sent_starters.txt",
    "abbrev_types.txt",
    "ortho_context.tab",
)
"""nltk's `punkt_tab/english` parameter files (HELM's bias metrics tokenise with punkt)."""
SYCOPHANCY_SUMMARY_COLUMNS: tuple[str, ...] = (
    "model",
    "n",
    "accuracy_before",
    "accuracy_after",
    "flip_rate",
    "flip_rate_ci_low",
    "flip_rate_ci_high",
    "n_unparsed",
)
"""`results/sycophancy/summary.csv` (evals/sycophancy.py): one row per model."""
HELM_INTERVAL_COLUMNS: tuple[str, ...] = ("ci_low", "ci_high")
"""95% bootstrap interval over instances of each summary.csv value (evals/helm_intervals.py),
after `HELM_SUMMARY_COLUMNS` (optional for readers)."""
PREFS_STYLE_KEYS: tuple[str, ...] = ("dataset", "split", "answers")
"""`results/data/prefs/style_measures.csv` (synth/table.py): one row per preference set, split
and side (`answers`: chosen or rejected), followed by `n` and `style_measures.MEASURES`."""
DPO_METRIC_KEYS: tuple[str, ...] = (
    "loss",
    "rewards_chosen",
    "rewards_rejected",
    "reward_margin",
    "reward_accuracy",
    "logps_chosen",
    "logps_rejected",
)
"""The per-pair means of a DPO row of `results/train/<run>/metrics.jsonl` (train/metrics.py), TRL's
set; train rows add `grad_norm`, `lr`, `tokens_per_s`, and every row has `step` and `split`."""


class RecordError(ValueError):
    """A record failed validation. `field` names the offending field."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"field '{field_name}': {message}")
        self.field = field_name


def lone_surrogate(text: str) -> str | None:
    """Where `text` holds a lone UTF-16 surrogate (JSON's `"\\ud800"` decodes to one), described
    for an error message; None when the text is encodable as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"a lone surrogate \\u{ord(text[e.start]):04x} at character {e.start}"
    return None


def _require_text(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise RecordError(name, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise RecordError(name, "is empty")
    surrogate = lone_surrogate(value)
    if surrogate:
        raise RecordError(name, f"holds {surrogate}: not valid Unicode, cannot be written as UTF-8")


class Record:
    """Mixin: strict dict round-trip with type checks on the top-level fields."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        if not isinstance(data, dict):
            raise RecordError("<row>", f"expected a JSON object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise RecordError(f.name, "is missing")
                continue
            value = data[f.name]
            try:
                conform(value, hints[f.name], coerce=False)
            except TypeMismatch as e:
                raise RecordError(
                    f.name, f"expected {e.expected}, got {type(e.got).__name__}"
                ) from None
            kwargs[f.name] = value
        unknown = set(data) - set(kwargs) - {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        if unknown and not getattr(cls, "allow_extra_fields", False):
            raise RecordError(sorted(unknown)[0], "is not a field of " + cls.__name__)
        return cls(**kwargs)


@dataclass(frozen=True)
class SFTExample(Record):
    """One single-turn conversation for SFT: optional system, one user turn, one assistant turn."""

    prompt_id: str
    """Stable identifier (a hash of the conversation when the source has none)."""
    user: str
    """The user's message."""
    assistant: str
    """The assistant's answer; the only tokens trained on (plus its closing `<|im_end|>`)."""
    system: str | None = None
    """Optional system message."""

    def __post_init__(self) -> None:
        _require_text("prompt_id", self.prompt_id)
        _require_text("user", self.user)
        _require_text("assistant", self.assistant)
        if self.system is not None:
            _require_text("system", self.system)

    def prompt_messages(self) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.system}] if self.system else []
        return messages + [{"role": "user", "content": self.user}]


@dataclass(frozen=True)
class PreferencePair(Record):
    """One preference pair: a single-turn prompt with a chosen and a rejected answer."""

    prompt_id: str
    """Identifier shared by every variant of the same prompt (original and rewritten)."""
    prompt: str
    """The user's message."""
    chosen: str
    """The preferred answer (for a style set: the original chosen answer rewritten in style)."""
    rejected: str
    """The dispreferred answer; style sets keep the original rejected answer, as in the paper."""
    provenance: dict[str, Any] | None = None
    """For rewritten rows: backend, generator model, style, prompt hash, sampling, seed,
    finish reason, original chosen answer."""

    def __post_init__(self) -> None:
        for name in ("prompt_id", "prompt", "chosen", "rejected"):
            _require_text(name, getattr(self, name))


@dataclass(frozen=True)
class EvalPrompt(Record):
    """A prompt on which every model is evaluated (generations, judge, win rates)."""

    prompt_id: str
    """Identifier of the prompt."""
    prompt: str
    """The user's message."""
    reference: str | None = None
    """A reference answer, when one exists (the tiny world's ground truth)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Free-form facts about the prompt (entity, attribute, value, seen/unseen split)."""

    def __post_init__(self) -> None:
        _require_text("prompt_id", self.prompt_id)
        _require_text("prompt", self.prompt)


@dataclass(frozen=True)
class Generation(Record):
    """One model's answer to one evaluation prompt."""

    prompt_id: str
    """The evaluation prompt answered."""
    prompt: str
    """The user's message, repeated so a generations file reads on its own."""
    response: str
    """The model's answer (may be empty: an empty answer is a result, not an error)."""
    model: str
    """Model name (`base`, `sft`, `dpo-<dataset>`)."""
    sampling: dict[str, Any]
    """Sampling parameters: max_new_tokens, temperature, top_p, top_k, seed, backend."""
    finish_reason: str = "stop"
    """`stop` (end-of-turn token) or `length` (hit max_new_tokens)."""

    def __post_init__(self) -> None:
        _require_text("prompt_id", self.prompt_id)
        if self.finish_reason not in ("stop", "length"):
            raise RecordError(
                "finish_reason", f"must be 'stop' or 'length', got {self.finish_reason!r}"
            )


@dataclass(frozen=True)
class JudgeScore(Record):
    """The judge's scores for one generation, in the paper's JSON schema (Appendix B.1)."""

    prompt_id: str
    """The evaluation prompt judged."""
    model: str
    """The model whose answer was judged."""
    helpfulness: int
    """1-5: does it provide useful, actionable information?"""
    relevance: int
    """1-5: is it on-topic and specific to the prompt?"""
    factuality: int
    """1-5: are the statements correct and verifiable?"""
    harmlessness: int
    """1-5: is it free from toxic, discriminatory, or biased content?"""
    reasons: dict[str, str]
    """A short reason per criterion."""
    judge: str = ""
    """Which judge produced the scores (backend and model)."""

    criteria: ClassVar[tuple[str, ...]] = JUDGE_CRITERIA

    def __post_init__(self) -> None:
        for name in JUDGE_CRITERIA:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5:
                raise RecordError(name, f"must be an integer 1-5, got {value!r}")
        missing = [c for c in JUDGE_CRITERIA if c not in self.reasons]
        if missing:
            raise RecordError("reasons", f"missing a reason for {', '.join(missing)}")


# The cards of the data and the shards: a JSON card, with length summaries.

META_KEY = b"stylized_dpo"
"""The Parquet schema-metadata key under which a tokenised shard stores its card (JSON)."""

PERCENTILES = (50, 90, 99)
"""The nearest-rank percentiles of every length summary in a card (`p50`, ...)."""


def percentiles(values: list[int]) -> dict[str, float]:
    """Nearest-rank p50/p90/p99, max and mean of a list of lengths."""
    if not values:
        return {}
    ordered = sorted(values)
    out: dict[str, float] = {}
    for p in PERCENTILES:
        out[f"p{p}"] = ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
    out["max"] = ordered[-1]
    out["mean"] = round(sum(ordered) / len(ordered), 2)
    return out


@dataclass(frozen=True)
class ProbeRow(Record):
    """One item of the sycophancy probe with the model's two answers
    (`results/sycophancy/<model>.jsonl`, evals/sycophancy.py)."""

    prompt_id: str
    """The multiple-choice item asked."""
    model: str
    """The model that answered."""
    prompt: str
    """The question with its lettered options, as the model saw it."""
    choices: list[str]
    """The options' texts, in letter order."""
    correct: str
    """The right option's letter."""
    first_answer: str
    """The answer before the push-back."""
    first_choice: str | None
    """The letter the first answer chose, or None (unparsed)."""
    second_answer: str
    """The answer after the push-back."""
    second_choice: str | None
    """The letter the second answer chose, or None (unparsed)."""
    correct_before: bool
    """Whether the first answer chose the right option."""
    correct_after: bool
    """Whether the second answer chose the right option."""
    flipped: bool
    """Whether a parsed first choice was not repeated in the second answer."""
