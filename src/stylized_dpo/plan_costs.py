"""The units of a run's plan (stylized_dpo.plan): typical lengths, throughputs, one stage's
cost, and the arithmetic that turns rows and lengths into tokens, GPU hours and API dollars."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylized_dpo.evals.helm import HelmConfig, expected_requests

CHARS_PER_API_TOKEN = 4  # OpenAI's rule of thumb for English text: the judge's own tokenizer


@dataclass(frozen=True)
class Lengths:
    """Rows of one split and their mean token lengths, with where the figures came from."""

    rows: int
    prompt: float
    answer: float
    source: str

    @property
    def estimated(self) -> bool:
        return self.source.startswith("estimate")


@dataclass(frozen=True)
class Throughput:
    per_s: float
    source: str  # "measured: ..." or "estimate"


@dataclass(frozen=True)
class StageCost:
    """One stage (a rule) of the plan, summed over its jobs."""

    stage: str
    jobs: int
    gpus_per_job: int
    units: float  # tokens (or HELM requests) the throughput divides
    unit: str
    input_tokens: float
    output_tokens: float
    counts_from: str
    gpu_hours: float | None = None
    throughput_from: str = ""
    api_usd: float | None = None
    rule: str = ""  # the rule whose runtime limit applies (default: the stage)

    @property
    def wall_hours_per_job(self) -> float | None:
        if self.gpu_hours is None:
            return None
        return self.gpu_hours / self.jobs / self.gpus_per_job


def card_lengths(card_path: Path, answer_column: str) -> Lengths | None:
    """Rows kept and mean lengths from a shard card, or None when it does not exist yet."""
    if not card_path.is_file():
        return None
    card = json.loads(card_path.read_text())
    answers = [card[c]["mean"] for c in answer_column.split("+")]
    return Lengths(
        rows=int(card["rows_out"]),
        prompt=float(card["prompt_tokens"]["mean"]),
        answer=sum(answers) / len(answers),
        source=str(card_path),
    )


def estimated_lengths(
    rows: int | None, cap: int | None, est: Mapping[str, Any], what: str
) -> Lengths:
    """Rows (capped by the data section's max_rows) x the config's typical lengths."""
    n = rows if cap is None else min(rows or cap, cap)
    if n is None:
        raise ValueError(f"compute.plan.estimates has no row count for {what}")
    kept = est.get("kept_fraction", 1.0)
    return Lengths(
        rows=round(n * kept),
        prompt=float(est["prompt_tokens"]),
        answer=float(est["answer_tokens"]),
        source=f"estimate: {n:,} rows x {kept:g} kept, config lengths",
    )


def training_examples(rows: int, epochs: int, max_steps: int | None, batch: int) -> int:
    """Examples one training run processes: max_steps x effective batch, else epochs x rows."""
    return max_steps * batch if max_steps is not None else epochs * rows


def gpu_hours(units: float, throughput: Throughput | None) -> float | None:
    return None if throughput is None else units / throughput.per_s / 3600


def api_usd(
    input_tokens: float, output_tokens: float, price_in: float | None, price_out: float | None
) -> float | None:
    if price_in is None or price_out is None:
        return None
    return (input_tokens * price_in + output_tokens * price_out) / 1e6


def dpo_tokens(lengths: Lengths, prefix_sharing: bool) -> float:
    """Tokens of one pair through the model: the prompt once with prefix sharing, else twice."""
    return (1 if prefix_sharing else 2) * lengths.prompt + 2 * lengths.answer


def judge_template_tokens(template: str) -> float:
    return math.ceil(len(template) / CHARS_PER_API_TOKEN)


def helm_requests(helm: Mapping[str, Any], models: int) -> int:
    """HELM requests of `models` helm-runs (stylized_dpo.evals.helm.expected_requests)."""
    return models * sum(expected_requests(HelmConfig.from_dict(dict(helm))).values())
