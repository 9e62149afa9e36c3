"""Pairwise win rates: each model's answer against the baseline's answer to the same prompt,
preferred by a scalar reward (paper Table 3: every model against Qwen base on 50 prompts, with
nvidia/llama-3.1-nemotron-70b-reward as the judge).

win = reward(model answer) > reward(baseline answer); a tie counts half; the win rate is
(wins + ties / 2) / n with a seeded percentile-bootstrap 95% interval over prompts. The mean
answer length (words, as `style_measures.words` counts them) of both sides is reported beside
it, because reward models are known to favour longer answers, and so is a length-controlled
win rate (AlpacaEval 2's approach, `stats.length_controlled_rates`): one logistic regression over
every model's pairs of the outcome on the model's identity and tanh(word-length difference /
its standard deviation), read at zero length difference, with a bootstrap over prompts.

The prompts: those both models answered, in eval-file order; when more than `n_prompts`, a
seeded sample of `n_prompts` of them (the same sample for every model, drawn from the
baseline's prompts).

The backends that score the answers (a reward per answer, or a pairwise judge reading both) are
`evals/rewards.py`'s.
A pair with a failed reward (or a failed verdict in either order) is dropped and counted
(`n_failed`).
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from stylized_dpo.api import ApiConfig
from stylized_dpo.config import Section
from stylized_dpo.evals.rewards import WIN_RATE_BACKENDS, Answers, Versus
from stylized_dpo.evals.stats import bootstrap_mean_ci, length_controlled_ci
from stylized_dpo.hashing import seeded_rng
from stylized_dpo.io import read_records, write_json
from stylized_dpo.records import WIN_RATE_COLUMNS, WIN_RATE_LC_COLUMNS, Generation
from stylized_dpo.style_measures import words

COLUMNS = [*WIN_RATE_COLUMNS, *WIN_RATE_LC_COLUMNS]


@dataclass(frozen=True)
class WinRateConfig(ApiConfig, Section):
    """Config key `win_rates` (see config/README.md); endpoint and retry fields (reward_api)
    from `ApiConfig`."""

    section: ClassVar[str] = "win_rates"

    backend: str = "reference"
    """`reference` (stand-in), `reward_api`, `reward_model` or `pairwise_judge`."""
    model: str | None = None
    """Reward model: served name (reward_api) or local path / hub name (reward_model); the
    judge model's served name (pairwise_judge)."""
    baseline: str = "base"
    n_prompts: int = 50
    base_url: str | None = "https://integrate.api.nvidia.com/v1"
    """Reward endpoint (reward_api): NVIDIA's hosted API by default, or a NIM / any
    OpenAI-compatible server."""
    api_key_env: str = "NVIDIA_API_KEY"
    reward_key: str = "reward"
    """Which `name:score` pair of the reward API's reply is the reward."""
    cache_dir: str = "results/judge/reward_cache"
    batch_size: int = 8
    """Conversations per forward pass (reward_model)."""
    device: str = "cpu"
    dtype: str = "float32"
    n_bootstrap: int = 1000
    prompt: str = "config/prompts/pairwise_judge.txt"
    """Prompt template of the pairwise judge."""
    temperature: float = 0.0
    """Pairwise judge sampling temperature (0 for repeatability)."""
    max_tokens: int = 512
    """Cap on the pairwise judge's reply."""
    price_input_per_mtok: float | None = None
    """USD per million input tokens of the reward service or judge, for `snakemake plan`."""
    price_output_per_mtok: float | None = None

    def reward_model(self) -> str:
        if not self.model:
            raise ValueError("win_rates.model must name the reward model (or pairwise judge)")
        return self.model


@dataclass(frozen=True)
class WinRate:
    """One model against the baseline."""

    n: int
    wins: int
    ties: int
    losses: int
    win_rate: float
    ci_low: float
    ci_high: float


def win_rate(
    model_rewards: Sequence[float],
    baseline_rewards: Sequence[float],
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
) -> WinRate:
    """Win rate of paired rewards (ties half) with a percentile-bootstrap 95% interval."""
    if len(model_rewards) != len(baseline_rewards):
        raise ValueError("rewards must be paired")
    a, b = np.asarray(model_rewards, float), np.asarray(baseline_rewards, float)
    outcome = np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))
    low, high = bootstrap_mean_ci(outcome, n_bootstrap, rng)
    return WinRate(
        n=len(outcome),
        wins=int((a > b).sum()),
        ties=int((a == b).sum()),
        losses=int((a < b).sum()),
        win_rate=float(outcome.mean()) if len(outcome) else math.nan,
        ci_low=low,
        ci_high=high,
    )


def compute_win_rates(
    models: Sequence[str],
    generation_paths: Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    config: WinRateConfig,
    seed: int,
    prompts_path: str | os.PathLike[str] | None = None,
    world_path: str | os.PathLike[str] | None = None,
    run_path: str | os.PathLike[str] | None = None,
    client: Any = None,
) -> pd.DataFrame:
    """win_rates.csv: every model (except the baseline) against `config.baseline`."""
    gens = {
        m: {g.prompt_id: g for g in read_records(p, Generation)}
        for m, p in zip(models, generation_paths, strict=True)
    }
    if config.baseline not in gens:
        raise ValueError(f"baseline '{config.baseline}' is not among the models {list(models)}")
    base = gens[config.baseline]
    order = list(base)
    chosen = order
    if len(order) > config.n_prompts:
        picked = set(random.Random(seed).sample(order, config.n_prompts))
        chosen = [pid for pid in order if pid in picked]
    others = [m for m in models if m != config.baseline]
    if config.backend not in WIN_RATE_BACKENDS:
        raise ValueError(f"unknown win_rates backend '{config.backend}'")
    backend = WIN_RATE_BACKENDS[config.backend](config, prompts_path, world_path, client)
    versus = backend.versus(gens, config.baseline, others, chosen)
    table = _table(gens, others, chosen, versus, config, seed)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_path, index=False)
    if run_path is not None:
        write_json(
            run_path,
            {
                "backend": config.backend,
                **versus.stats,
                "n_prompts": len(chosen),
                "pairs_scored": versus.pairs_scored,
            },
        )
    return table


def _table(
    gens: Answers,
    others: list[str],
    chosen: list[str],
    versus: Versus,
    config: WinRateConfig,
    seed: int,
) -> pd.DataFrame:
    """One row per model: its win rate, the mean lengths and the length-controlled win rate."""
    base = gens[config.baseline]
    scores = versus.scores
    rows = []
    # Every model's scored pairs, for the joint length-controlled fit.
    lc_group: list[int] = []
    lc_outcome: list[float] = []
    lc_length: list[float] = []
    lc_item: list[int] = []
    item_index = {pid: i for i, pid in enumerate(chosen)}
    for g, m in enumerate(others):
        both = [pid for pid in chosen if pid in gens[m]]
        ok = [pid for pid in both if scores.get((m, pid)) is not None]
        for pid in ok:
            mine, theirs = scores[(m, pid)]  # type: ignore[misc]
            lc_group.append(g)
            lc_outcome.append(1.0 if mine > theirs else 0.5 if mine == theirs else 0.0)
            lc_length.append(
                float(len(words(gens[m][pid].response)) - len(words(base[pid].response)))
            )
            lc_item.append(item_index[pid])
        wr = win_rate(
            [scores[(m, pid)][0] for pid in ok],  # type: ignore[index]
            [scores[(m, pid)][1] for pid in ok],  # type: ignore[index]
            seeded_rng(seed, m, config.baseline),
            config.n_bootstrap,
        )
        rows.append(
            {
                "model": m,
                "baseline": config.baseline,
                **wr.__dict__,
                "mean_len_model": _mean_len([gens[m][pid].response for pid in ok]),
                "mean_len_baseline": _mean_len([base[pid].response for pid in ok]),
                "backend": config.backend,
                "n_failed": len(both) - len(ok),
            }
        )
        if len(both) < len(chosen):
            print(f"{m}: answered {len(both)} of the {len(chosen)} win-rate prompts")
    if lc_group:
        lc, lc_low, lc_high = length_controlled_ci(
            lc_group,
            lc_outcome,
            lc_length,
            lc_item,
            len(others),
            config.n_bootstrap,
            seeded_rng(seed, "length-controlled", config.baseline),
        )
        for g, row in enumerate(rows):
            scored = g in set(lc_group)
            row["lc_win_rate"] = float(lc[g]) if scored else math.nan
            row["lc_ci_low"] = float(lc_low[g]) if scored else math.nan
            row["lc_ci_high"] = float(lc_high[g]) if scored else math.nan
    return pd.DataFrame(rows, columns=COLUMNS)


def _mean_len(texts: list[str]) -> float:
    return float(np.mean([len(words(t)) for t in texts])) if texts else math.nan
