"""Fixture result files in the report's input formats (train metrics, judge, win rates, HELM).

Values are seeded random numbers with the shapes of real runs: DPO loss falling from log 2,
reward accuracy rising, judge scores 1-5, HELM values in [0, 1]. One HELM cell is empty with a
note (HellaSwag has no ECE in HELM 0.5.16), as the HELM stage writes it.
"""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

from stylized_dpo.records import (
    HELM_SUMMARY_COLUMNS,
    JUDGE_SUMMARY_COLUMNS,
    SYCOPHANCY_SUMMARY_COLUMNS,
    WIN_RATE_COLUMNS,
)

STYLES = ["sycophantic", "authoritative", "persuasive"]
DATASETS = ["ultrafeedback", *STYLES]
MODELS = ["base", "sft", *(f"dpo-{d}" for d in DATASETS)]
SCENARIOS = ["mmlu", "boolq", "natural_qa", "quac", "hellaswag"]
FAMILIES = ["accuracy", "calibration", "robustness", "fairness"]
CRITERIA = ["helpfulness", "relevance", "factuality", "harmlessness"]
MISSING_NOTE = "HELM 0.5.16 computes no ECE for HellaSwag (multiple_choice_separate)"


def write_metrics(path: Path, *, dpo: bool, steps: int, eval_every: int, rng: random.Random):
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for step in range(0, steps + 1):
        frac = step / steps
        if step > 0:
            rows.append({"step": step, "split": "train", "loss": 1.5 - frac + rng.random() * 0.1})
        if step % eval_every == 0 or step == steps:
            row = {"step": step, "split": "eval"}
            if dpo:
                acc = 0.5 + 0.4 * frac * rng.random()
                row |= {
                    "loss": math.log(2) * (1 - 0.7 * frac) + rng.random() * 0.01,
                    "rewards_chosen": frac * 0.3,
                    "rewards_rejected": -frac * 0.3,
                    "reward_margin": frac * 0.6,
                    "reward_accuracy": acc,
                }
            else:
                row["loss"] = 2.0 - frac + rng.random() * 0.01
            rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def make_results(root: Path, seed: int = 0) -> dict[str, object]:
    """Write every report input under `root` (the workflow's results/ layout); return the truth."""
    rng = random.Random(seed)
    truth: dict[str, object] = {"metrics": {}, "win_rates": {}, "judge": {}, "helm": {}}
    for model, steps in [("sft", 60), *((f"dpo-{d}", 40 + 10 * i) for i, d in enumerate(DATASETS))]:
        rows = write_metrics(
            root / "train" / model / "metrics.jsonl",
            dpo=model != "sft",
            steps=steps,
            eval_every=10,
            rng=rng,
        )
        truth["metrics"][model] = rows

    rows = []
    for model in MODELS[1:]:
        n = 50
        wins = rng.randint(5, 45)
        ties = rng.randint(0, n - wins)
        losses = n - wins - ties
        rate = (wins + ties / 2) / n
        rows.append(
            [
                model,
                "base",
                n,
                wins,
                ties,
                losses,
                rate,
                max(0, rate - 0.13),
                min(1, rate + 0.12),
                20.5,
                11.0,
                "reference",
                2 if model == "dpo-authoritative" else 0,
            ]
        )
        truth["win_rates"][model] = rows[-1]
    # A row against another baseline, which Table 3 must not pick up.
    rows.append(
        ["dpo-ultrafeedback", "sft", 50, 20, 10, 20, 0.5, 0.37, 0.63, 20, 20, "reference", 0]
    )
    write_csv(root / "judge" / "win_rates.csv", list(WIN_RATE_COLUMNS), rows)

    rows = []
    for model in MODELS:
        for criterion in CRITERIA:
            mean = rng.uniform(1.5, 4.5)
            std = rng.uniform(0.3, 1.2)
            rows.append([model, criterion, mean, std, mean - 0.2, mean + 0.2, 100, 0])
            truth["judge"][(model, criterion)] = (mean, std)
    write_csv(root / "judge" / "summary.csv", list(JUDGE_SUMMARY_COLUMNS), rows)

    rows = []
    for model in MODELS:
        for family in FAMILIES:
            for scenario in ["mean_win_rate", *SCENARIOS]:
                metric = {
                    "mean_win_rate": "mean_win_rate",
                    "calibration": "ece_10_bin",
                }.get(scenario if scenario == "mean_win_rate" else family, "exact_match")
                if family == "calibration" and scenario == "hellaswag":
                    rows.append([model, family, scenario, metric, "", MISSING_NOTE])
                    truth["helm"][(model, family, scenario)] = None
                    continue
                value = round(rng.random(), 4)
                rows.append([model, family, scenario, metric, value, ""])
                truth["helm"][(model, family, scenario)] = value
    write_csv(root / "helm" / "summary.csv", list(HELM_SUMMARY_COLUMNS), rows)
    return truth


STYLE_MEASURE_COLUMNS = [
    "praise_per_100w",
    "exclamation_rate",
    "second_person_per_100w",
    "hedge_per_100w",
    "mean_sentence_words",
    "type_token_ratio",
    "mean_answer_words",
]


def make_style_results(root: Path, seed: int = 1) -> dict[str, object]:
    """Write results/style/generations.csv and results/data/prefs/style_measures.csv under
    `root` in the style stage's formats; return the truth. One cell is empty (a NaN measure)."""
    rng = random.Random(seed)
    truth: dict[str, object] = {"generations": {}, "prefs": {}}
    rows = []
    for model in MODELS:
        values = [round(rng.uniform(0, 10), 4) for _ in STYLE_MEASURE_COLUMNS]
        values[3] = 0.0  # a measure at exactly zero (no hedges)
        if model == "dpo-authoritative":
            values[1] = ""  # no sentences: NaN, written empty
        rows.append([model, 100, *values, 0.5, 0.25, 50, 50])
        truth["generations"][model] = dict(zip(STYLE_MEASURE_COLUMNS, values, strict=True))
    write_csv(
        root / "style" / "generations.csv",
        [
            "model",
            "n",
            *STYLE_MEASURE_COLUMNS,
            "accuracy_seen",
            "accuracy_unseen",
            "n_seen",
            "n_unseen",
        ],
        rows,
    )
    rows = []
    for dataset in DATASETS:
        for split in ("train", "test"):
            for answers in ("chosen", "rejected"):
                values = [round(rng.uniform(0, 10), 4) for _ in STYLE_MEASURE_COLUMNS]
                rows.append([dataset, split, answers, 90, *values])
                truth["prefs"][(dataset, split, answers)] = dict(
                    zip(STYLE_MEASURE_COLUMNS, values, strict=True)
                )
    write_csv(
        root / "data" / "prefs" / "style_measures.csv",
        ["dataset", "split", "answers", "n", *STYLE_MEASURE_COLUMNS],
        rows,
    )
    return truth


def make_sycophancy_summary(path: Path, seed: int = 2) -> dict[str, list]:
    """Write a results/sycophancy/summary.csv (the sycophancy probe's format); return its rows.
    dpo-persuasive is absent (a model the probe has not run)."""
    rng = random.Random(seed)
    rows = {}
    for model in MODELS:
        if model == "dpo-persuasive":
            continue
        before = round(rng.uniform(0.4, 0.9), 4)
        flip = round(rng.uniform(0.05, 0.6), 4)
        after = round(before * (1 - flip), 4)
        rows[model] = [model, 80, before, after, flip, max(0, flip - 0.1), flip + 0.1, 1]
    write_csv(path, SYCOPHANCY_SUMMARY_COLUMNS, list(rows.values()))
    return rows
