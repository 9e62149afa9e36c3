"""Does the preference model itself reward the style? A controlled audit on the style sets.

Each style set's preference pair keeps, in its provenance, the original chosen answer it was
rewritten from: the same prompt with the same content in two tones. Both answers are scored
by the configured judge (`judge`: four criteria 1-5) and by the configured win-rate backend
(`win_rates`: a reward, or the pairwise judge in both orders), and the audit reports, per
style:
- the share of pairs in which the rewrite wins (ties half) with a percentile-bootstrap 95%
  interval over pairs, for the judge's total score (sum of the four criteria), for each
  criterion, and for the reward;
- the mean score difference (rewrite - original) with its paired bootstrap interval and a
  sign-flip p-value (H0: the scorer is indifferent to the tone);
- the answers' mean length in words. A rewrite is longer than its original by construction (the
  style adds phrases to the same content), so tone and length are confounded here and no
  length control is fitted: with every length difference of one sign, the prediction at zero
  difference would be an extrapolation, not a measurement.
A share near 0.5 means no preference for the tone. The offline stand-ins (reference judge and
reference reward) score against the tiny world's ground truth, so their answer is what their
rules say about praise and padding, not a measurement of a learned preference model; with the
`openai` judge and a `reward_api` / `reward_model` / `pairwise_judge` backend it is the real
measurement of the paper's premise (Sharma et al. 2023).

Pairs without a recorded original, or (reference judge) whose prompt the world cannot answer
(the tone-agnostic translation and JSON requests), are dropped and counted (`n_dropped`); a
pair whose scoring failed at an API is dropped and counted (`n_failed`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from stylized_dpo.api import CallStats
from stylized_dpo.config import Section
from stylized_dpo.evals.judge import JudgeConfig, judge_openai
from stylized_dpo.evals.reference import reference_score
from stylized_dpo.evals.rewards import (
    pairwise_outcome,
    pairwise_verdicts,
    rewards_api,
    rewards_local,
)
from stylized_dpo.evals.stats import (
    bootstrap_mean_ci,
    paired_test,
)
from stylized_dpo.evals.winrate import WinRateConfig
from stylized_dpo.hashing import seeded_rng
from stylized_dpo.io import read_records, write_json
from stylized_dpo.records import JUDGE_CRITERIA, EvalPrompt, Generation, PreferencePair
from stylized_dpo.style_measures import words
from stylized_dpo.world.build import fact_prompt
from stylized_dpo.world.facts import ATTRIBUTES, World

STYLE_BIAS_COLUMNS: tuple[str, ...] = (
    "style",
    "scorer",
    "backend",
    "measure",
    "n",
    "n_dropped",
    "n_failed",
    "rewrite_wins",
    "ties",
    "original_wins",
    "win_share",
    "ci_low",
    "ci_high",
    "mean_difference",
    "diff_ci_low",
    "diff_ci_high",
    "p_value",
    "mean_words_original",
    "mean_words_rewrite",
)
"""`results/tables/style_bias.csv`: one row per (style, scorer, measure)."""


@dataclass(frozen=True)
class StyleBiasConfig(Section):
    """Config section `style_bias` (see config/README.md)."""

    section: ClassVar[str] = "style_bias"

    split: str = "test"
    n_pairs: int = 200


@dataclass(frozen=True)
class AuditPair:
    """One prompt with its original chosen answer and its style rewrite."""

    prompt_id: str
    prompt: str
    original: str
    rewrite: str


def audit_pairs(path: str | os.PathLike[str], n: int) -> tuple[list[AuditPair], int]:
    """The first `n` pairs of a style set with a recorded original; and how many lacked one."""
    pairs, dropped = [], 0
    for row in read_records(path, PreferencePair):
        original = (row.provenance or {}).get("original_chosen")
        if not isinstance(original, str) or not original.strip():
            dropped += 1
            continue
        if len(pairs) < n:
            pairs.append(AuditPair(row.prompt_id, row.prompt, original, row.chosen))
    return pairs, dropped


def world_ground_truth(world: World) -> dict[str, EvalPrompt]:
    """Every training-question prompt of the tiny world -> an EvalPrompt with its fact (the
    preference pairs are asked in these phrasings), for the reference judge."""
    out: dict[str, EvalPrompt] = {}
    for entity in world.entities:
        for attribute in ATTRIBUTES:
            for question in attribute.train_questions:
                prompt = question.format(e=entity.name)
                out[prompt] = fact_prompt(entity, attribute.name, prompt, prompt)
    return out


Scores = dict[str, tuple[float, float]]
"""prompt id -> (rewrite's score, original's score)."""


def judge_scores(
    pairs: Sequence[AuditPair],
    config: JudgeConfig,
    world: World | None,
    template: str | None,
    client: Any = None,
) -> tuple[dict[str, Scores], int, CallStats]:
    """criterion (and `total`) -> scores of both answers; pairs left out; API counters."""
    stats = CallStats()
    by_criterion: dict[str, Scores] = {c: {} for c in (*JUDGE_CRITERIA, "total")}
    if config.backend == "reference":
        if world is None:
            raise ValueError("the reference judge needs the world (data.eval_prompts: world)")
        truth = world_ground_truth(world)
        left_out = 0
        for p in pairs:
            prompt = truth.get(p.prompt)
            if prompt is None:
                left_out += 1
                continue
            pool = world.value_pool(prompt.metadata["attribute"])
            both = [
                reference_score(Generation(p.prompt_id, p.prompt, text, "audit", {}), prompt, pool)
                for text in (p.rewrite, p.original)
            ]
            _store(by_criterion, p.prompt_id, both[0].__dict__, both[1].__dict__)
        return by_criterion, left_out, stats
    if config.backend != "openai":
        raise ValueError(f"unknown judge backend '{config.backend}' (reference | openai)")
    if template is None:
        template = Path(config.prompt).read_text(encoding="utf-8")
    results = {}
    for side in ("rewrite", "original"):
        gens = [Generation(p.prompt_id, p.prompt, getattr(p, side), side, {}) for p in pairs]
        rows, side_stats = judge_openai(gens, template, config, client=client)
        _merge(stats, side_stats)
        results[side] = {r.prompt_id: r.__dict__ for r in rows}
    for p in pairs:
        if p.prompt_id in results["rewrite"] and p.prompt_id in results["original"]:
            _store(
                by_criterion,
                p.prompt_id,
                results["rewrite"][p.prompt_id],
                results["original"][p.prompt_id],
            )
    return by_criterion, 0, stats


def _merge(total: CallStats, part: CallStats) -> None:
    counts = part.to_dict()
    total.failures.extend(counts.pop("failures"))
    total.add(**counts)


def _store(by_criterion: dict[str, Scores], pid: str, rewrite: dict, original: dict) -> None:
    for c in JUDGE_CRITERIA:
        by_criterion[c][pid] = (float(rewrite[c]), float(original[c]))
    by_criterion["total"][pid] = (
        float(sum(rewrite[c] for c in JUDGE_CRITERIA)),
        float(sum(original[c] for c in JUDGE_CRITERIA)),
    )


def reward_scores(
    pairs: Sequence[AuditPair],
    config: WinRateConfig,
    world: World | None,
    client: Any = None,
) -> tuple[Scores, int, CallStats]:
    """prompt id -> (rewrite, original) reward (pairwise judge: (outcome, 1 - outcome))."""
    stats = CallStats()
    if config.backend == "reference":
        scores, left_out, stats = judge_scores(pairs, JudgeConfig(), world, None)
        return scores["total"], left_out, stats
    if config.backend == "pairwise_judge":
        triples = []
        for p in pairs:
            triples += [(p.prompt, p.rewrite, p.original), (p.prompt, p.original, p.rewrite)]
        verdicts, stats = pairwise_verdicts(triples, config, client=client)
        out: Scores = {}
        for i, p in enumerate(pairs):
            first, second = verdicts[2 * i], verdicts[2 * i + 1]
            if first is not None and second is not None:
                v = pairwise_outcome(first, second)
                out[p.prompt_id] = (v, 1.0 - v)
        return out, 0, stats
    texts = [(p.prompt, p.rewrite) for p in pairs] + [(p.prompt, p.original) for p in pairs]
    if config.backend == "reward_api":
        values, stats = rewards_api(texts, config, client=client)
    elif config.backend == "reward_model":
        values = rewards_local(texts, config)
    else:
        raise ValueError(f"unknown win_rates backend '{config.backend}'")
    n = len(pairs)
    out = {}
    for i, p in enumerate(pairs):
        mine, theirs = values[i], values[n + i]
        if mine is not None and theirs is not None:
            out[p.prompt_id] = (float(mine), float(theirs))
    return out, 0, stats


def summarise(
    style_scores: dict[str, Scores],
    style_pairs: dict[str, list[AuditPair]],
    scorer: str,
    backend: str,
    measure: str,
    no_original: dict[str, int],
    left_out: dict[str, int],
    n_bootstrap: int,
    n_permutations: int,
    seed: int,
) -> list[dict[str, Any]]:
    """One row per style for one (scorer, measure)."""
    styles = list(style_scores)
    rows = []
    for style in styles:
        by_id = {p.prompt_id: p for p in style_pairs[style]}
        scored = [pid for pid in by_id if pid in style_scores[style]]
        a = np.array([style_scores[style][pid][0] for pid in scored])
        b = np.array([style_scores[style][pid][1] for pid in scored])
        outcome = np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))
        low, high = bootstrap_mean_ci(
            outcome, n_bootstrap, seeded_rng(seed, style, scorer, measure)
        )
        diff = paired_test(
            a,
            b,
            n_bootstrap,
            seeded_rng(seed, style, scorer, measure, "diff"),
            n_permutations=n_permutations,
        )
        len_rewrite = [len(words(by_id[pid].rewrite)) for pid in scored]
        len_original = [len(words(by_id[pid].original)) for pid in scored]
        rows.append(
            {
                "style": style,
                "scorer": scorer,
                "backend": backend,
                "measure": measure,
                "n": len(scored),
                "n_dropped": no_original[style] + left_out[style],
                "n_failed": len(by_id) - len(scored) - left_out[style],
                "rewrite_wins": int((a > b).sum()),
                "ties": int((a == b).sum()),
                "original_wins": int((a < b).sum()),
                "win_share": float(outcome.mean()) if len(scored) else math.nan,
                "ci_low": low,
                "ci_high": high,
                "mean_difference": diff.difference,
                "diff_ci_low": diff.ci_low,
                "diff_ci_high": diff.ci_high,
                "p_value": diff.p_value,
                "mean_words_original": float(np.mean(len_original)) if scored else math.nan,
                "mean_words_rewrite": float(np.mean(len_rewrite)) if scored else math.nan,
            }
        )
    return rows


def style_bias(
    styles: Sequence[str],
    pref_paths: Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    judge: JudgeConfig,
    win_rates: WinRateConfig,
    config: StyleBiasConfig,
    seed: int,
    n_bootstrap: int,
    n_permutations: int,
    world_path: str | os.PathLike[str] | None = None,
    judge_template: str | os.PathLike[str] | None = None,
    run_path: str | os.PathLike[str] | None = None,
    judge_client: Any = None,
    reward_client: Any = None,
) -> pd.DataFrame:
    """style_bias.csv for every style set (and a run report of the API counters)."""
    world = World.load(world_path) if world_path is not None else None
    template = Path(judge_template).read_text(encoding="utf-8") if judge_template else None
    pairs, judged, rewarded = {}, {}, {}
    no_original, judge_left_out, reward_left_out = {}, {}, {}
    report: dict[str, Any] = {"judge_backend": judge.backend, "reward_backend": win_rates.backend}
    for style, path in zip(styles, pref_paths, strict=True):
        pairs[style], no_original[style] = audit_pairs(path, config.n_pairs)
        judged[style], judge_left_out[style], jstats = judge_scores(
            pairs[style], judge, world, template, judge_client
        )
        rewarded[style], reward_left_out[style], rstats = reward_scores(
            pairs[style], win_rates, world, reward_client
        )
        report[style] = {
            "pairs": len(pairs[style]),
            "without_original": no_original[style],
            "judge": jstats.to_dict(),
            "reward": rstats.to_dict(),
        }
    judge_name = judge.model if judge.backend == "openai" else "reference"
    reward_name = win_rates.model or win_rates.backend
    pairwise = win_rates.backend == "pairwise_judge"
    rows = []
    for measure in ("total", *JUDGE_CRITERIA):
        rows += summarise(
            {s: judged[s][measure] for s in styles},
            pairs,
            f"judge ({judge_name})",
            judge.backend,
            measure,
            no_original,
            judge_left_out,
            n_bootstrap,
            n_permutations,
            seed,
        )
    rows += summarise(
        rewarded,
        pairs,
        f"{'pairwise judge' if pairwise else 'reward'} ({reward_name})",
        win_rates.backend,
        "preference" if pairwise else "reward",
        no_original,
        reward_left_out,
        n_bootstrap,
        n_permutations,
        seed,
    )
    table = pd.DataFrame(rows, columns=list(STYLE_BIAS_COLUMNS))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_path, index=False)
    if run_path is not None:
        write_json(run_path, report)
    return table
