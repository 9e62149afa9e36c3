"""Judging generations on the paper's four criteria (helpfulness, relevance, factuality,
harmlessness; 1-5 each, with a reason), and summarising the scores.

Two backends, one output schema (`JudgeScore` rows, `results/judge/<model>.jsonl`), plus a run
report (`<model>.run.json`: items, scored, failed with reasons, API calls, retries, token usage,
estimated cost, seconds):

`openai` — the paper's judge (Appendix B.1): the prompt of `config/prompts/judge.txt` (the
paper's, verbatim) with `{prompt}` and `{response}` filled in, sent to any OpenAI-compatible
endpoint with `response_format={"type": "json_object"}`. A reply counts only if its content is
a JSON object (a surrounding markdown code fence is removed first) with the four criteria as
integers 1-5 (JSON integers: `4.0` or `"4"` are rejected, never coerced) and `reasons` holding a
non-empty string per criterion; a reply cut off at the token limit is rejected too. Rejected
replies are asked for again, then the item is recorded as failed (see `stylized_dpo/api.py` for
retries, backoff and the disk cache keyed by judge model + template hash + prompt + response).

`reference` — a STAND-IN for the LLM judge in the embedded default (offline, no model): the
ground-truth rules of `evals/reference.py`.

Each backend is a `JudgeBackend` (one `score` call over a model's generations), named in
`JUDGE_BACKENDS`.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pandas as pd

from stylized_dpo.api import (
    ApiConfig,
    Call,
    CallStats,
    InvalidReply,
    batch_ask,
    reply_content,
)
from stylized_dpo.config import Section
from stylized_dpo.evals.reference import GroundTruth
from stylized_dpo.evals.stats import bootstrap_mean_ci
from stylized_dpo.hashing import cache_key, seeded_rng, text_hash
from stylized_dpo.io import DataError, read_records, write_json, write_jsonl
from stylized_dpo.records import JUDGE_CRITERIA, JUDGE_SUMMARY_COLUMNS, Generation, JudgeScore


@dataclass(frozen=True)
class JudgeConfig(ApiConfig, Section):
    """Config key `judge` (see config/README.md); endpoint and retry fields from `ApiConfig`."""

    section: ClassVar[str] = "judge"

    backend: str = "reference"
    """`reference` (stand-in, offline) or `openai` (the paper's LLM judge)."""
    model: str = "gpt-4o-mini"
    """Judge model at the endpoint."""
    prompt: str = "config/prompts/judge.txt"
    """The judge prompt template (the paper's Appendix B.1)."""
    temperature: float = 0.0
    """Judge sampling temperature (the paper does not state one; 0 for repeatability)."""
    max_tokens: int = 512
    """Cap on the judge's reply."""
    cache_dir: str = "results/judge/cache"
    """Where answers are cached (never an output of a rule, so Snakemake keeps it)."""
    price_input_per_mtok: float = 0.15
    """USD per million prompt tokens (gpt-4o-mini list price) for the cost estimate."""
    price_output_per_mtok: float = 0.60
    """USD per million completion tokens."""
    n_bootstrap: int = 1000
    """Bootstrap resamples for the summary's confidence intervals."""


# --------------------------------------------------------------------------------------------
# The LLM judge (the paper's)

_PLACEHOLDER = re.compile(r"\{(prompt|response)\}")
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*)\n\s*```\s*$", re.DOTALL)


def render_prompt(template: str, prompt: str, response: str) -> str:
    """Fill `{prompt}` and `{response}` in one pass (the template's JSON braces stay as they are,
    and braces inside the filled texts are never re-read as placeholders)."""
    if "{prompt}" not in template or "{response}" not in template:
        raise ValueError("the judge template must contain {prompt} and {response}")
    values = {"prompt": prompt, "response": response}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def parse_judge_content(content: Any) -> dict[str, Any]:
    """Validate the judge's JSON reply; raise `InvalidReply` (never coerce)."""
    if not isinstance(content, str) or not content.strip():
        raise InvalidReply("empty reply")
    fenced = _FENCE.match(content)
    text = fenced.group(1) if fenced else content
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidReply(f"not JSON: {e.msg} at column {e.colno}") from e
    if not isinstance(data, dict):
        raise InvalidReply("the JSON is not an object")
    scores: dict[str, Any] = {}
    for name in JUDGE_CRITERIA:
        value = data.get(name)
        if type(value) is not int:
            raise InvalidReply(f"'{name}' is not a JSON integer: {value!r}")
        if not 1 <= value <= 5:
            raise InvalidReply(f"'{name}' is out of range 1-5: {value}")
        scores[name] = value
    reasons = data.get("reasons")
    if not isinstance(reasons, dict):
        raise InvalidReply("'reasons' is not an object")
    for name in JUDGE_CRITERIA:
        if not isinstance(reasons.get(name), str) or not reasons[name].strip():
            raise InvalidReply(f"'reasons.{name}' is missing or empty")
    scores["reasons"] = {name: reasons[name] for name in JUDGE_CRITERIA}
    return scores


def _parse_reply(data: dict[str, Any]) -> dict[str, Any]:
    return parse_judge_content(reply_content(data))


def judge_openai(
    generations: list[Generation], template: str, config: JudgeConfig, client: Any = None
) -> tuple[list[JudgeScore], CallStats]:
    """Score generations with an LLM judge; returns scored rows (input order) and run stats."""
    template_id = text_hash(template)
    by_id = {g.prompt_id: g for g in generations}

    def call(prompt_id: str) -> Call:
        g = by_id[prompt_id]
        return Call(
            key=cache_key("judge", config.model, template_id, g.prompt, g.response),
            messages=[{"role": "user", "content": render_prompt(template, g.prompt, g.response)}],
            options={
                "response_format": {"type": "json_object"},
                "temperature": config.temperature,
                "max_tokens": config.max_tokens,
            },
        )

    results, stats = batch_ask(
        list(by_id),
        call,
        _parse_reply,
        config.model,
        config,
        config.cache_dir,
        "judge.api_key_env",
        desc=f"judge {config.model}",
        client=client,
    )
    rows = [
        JudgeScore(
            prompt_id=g.prompt_id,
            model=g.model,
            judge=f"openai:{config.model}",
            **results[g.prompt_id],
        )
        for g in generations
        if g.prompt_id in results
    ]
    return rows, stats


# --------------------------------------------------------------------------------------------
# The backends


@dataclass(frozen=True)
class JudgeInputs:
    """What a judge backend reads besides the generations (the rule passes those it needs)."""

    prompts_path: str | os.PathLike[str] | None = None
    """The eval prompts (reference)."""
    world_path: str | os.PathLike[str] | None = None
    """The world whose facts answer them (reference)."""
    template_path: str | os.PathLike[str] | None = None
    """The judge prompt (openai; default `judge.prompt`)."""
    client: Any = None
    """An OpenAI-compatible client (openai; default: one from the config)."""


class JudgeBackend(Protocol):
    """Scores one model's generations: the rows scored (input order), the run's counters, and
    what the run report says about the judge."""

    def score(
        self, generations: list[Generation], path: str | os.PathLike[str]
    ) -> tuple[list[JudgeScore], CallStats, dict[str, Any]]: ...


class ReferenceJudge:
    """The ground-truth rules (`evals/reference.py`); needs the eval prompts and the world."""

    def __init__(self, config: JudgeConfig, inputs: JudgeInputs):
        if inputs.prompts_path is None or inputs.world_path is None:
            raise ValueError("the reference judge needs the eval prompts and the world")
        self.prompts_path = inputs.prompts_path
        self.truth = GroundTruth.load(inputs.prompts_path, inputs.world_path)

    def score(
        self, generations: list[Generation], path: str | os.PathLike[str]
    ) -> tuple[list[JudgeScore], CallStats, dict[str, Any]]:
        rows = []
        for line, g in enumerate(generations, start=1):
            if g.prompt_id not in self.truth.prompts:
                raise DataError(
                    path, line, "prompt_id", f"{g.prompt_id} is not in {self.prompts_path}"
                )
            rows.append(self.truth.score(g, self.truth.prompts[g.prompt_id]))
        info = {"judge_model": "reference (stand-in: ground-truth rules)"}
        return rows, CallStats(items=len(generations)), info


class LLMJudge:
    """The paper's judge at an OpenAI-compatible endpoint (`judge_openai`)."""

    def __init__(self, config: JudgeConfig, inputs: JudgeInputs):
        self.config = config
        self.template = Path(inputs.template_path or config.prompt).read_text(encoding="utf-8")
        self.client = inputs.client

    def score(
        self, generations: list[Generation], path: str | os.PathLike[str]
    ) -> tuple[list[JudgeScore], CallStats, dict[str, Any]]:
        rows, stats = judge_openai(generations, self.template, self.config, client=self.client)
        info = {"judge_model": self.config.model, "template_sha256_16": text_hash(self.template)}
        return rows, stats, info


JUDGE_BACKENDS: dict[str, Callable[..., JudgeBackend]] = {
    "reference": ReferenceJudge,
    "openai": LLMJudge,
}
"""Config `judge.backend` -> its class, built with (config, `JudgeInputs`)."""


# --------------------------------------------------------------------------------------------
# Running a model's judging (the `judge` rule)


def _check_unique(generations: list[Generation], path: str | os.PathLike[str]) -> None:
    seen: set[str] = set()
    for line, g in enumerate(generations, start=1):
        if g.prompt_id in seen:
            raise DataError(path, line, "prompt_id", f"duplicate prompt_id {g.prompt_id}")
        seen.add(g.prompt_id)


def judge_model(
    generations_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    run_path: str | os.PathLike[str],
    config: JudgeConfig,
    prompts_path: str | os.PathLike[str] | None = None,
    world_path: str | os.PathLike[str] | None = None,
    template_path: str | os.PathLike[str] | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Judge one model's generations file; write the scores and the run report."""
    start = time.perf_counter()
    generations = read_records(generations_path, Generation)
    _check_unique(generations, generations_path)
    if config.backend not in JUDGE_BACKENDS:
        raise ValueError(f"unknown judge backend '{config.backend}' (reference | openai)")
    inputs = JudgeInputs(prompts_path, world_path, template_path, client)
    backend = JUDGE_BACKENDS[config.backend](config, inputs)
    rows, stats, info = backend.score(generations, generations_path)
    report: dict[str, Any] = {"backend": config.backend, **info}
    write_jsonl(out_path, rows)
    cost = stats.cost_usd(config.price_input_per_mtok, config.price_output_per_mtok)
    report.update(stats.to_dict())
    report.update(
        scored=len(rows),
        estimated_cost_usd=round(cost, 6),
        seconds=round(time.perf_counter() - start, 3),
    )
    write_json(run_path, report)
    print(
        f"judged {len(rows)}/{len(generations)} ({stats.failed} failed, {stats.api_calls} calls, "
        f"{stats.cached} cached, est. ${cost:.4f})"
    )
    return report


# --------------------------------------------------------------------------------------------
# Summary table


def summarize(
    models: Sequence[str],
    scores_paths: Sequence[str | os.PathLike[str]],
    run_paths: Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    seed: int,
    n_bootstrap: int = 1000,
) -> pd.DataFrame:
    """summary.csv: model, criterion, mean, std, ci_low, ci_high (bootstrap 95%), n, n_failed."""
    rows = []
    for model, scores_path, run_path in zip(models, scores_paths, run_paths, strict=True):
        scores = read_records(scores_path, JudgeScore)
        n_failed = int(json.loads(Path(run_path).read_text(encoding="utf-8"))["failed"])
        for criterion in JUDGE_CRITERIA:
            values = [getattr(s, criterion) for s in scores]
            low, high = bootstrap_mean_ci(values, n_bootstrap, seeded_rng(seed, model, criterion))
            series = pd.Series(values, dtype=float)
            rows.append(
                {
                    "model": model,
                    "criterion": criterion,
                    "mean": series.mean() if values else math.nan,
                    "std": series.std(ddof=1) if len(values) > 1 else math.nan,
                    "ci_low": low,
                    "ci_high": high,
                    "n": len(values),
                    "n_failed": n_failed,
                }
            )
    table = pd.DataFrame(rows, columns=list(JUDGE_SUMMARY_COLUMNS))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_path, index=False)
    return table
