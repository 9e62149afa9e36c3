"""The style of each model's answers: `style_measures.measure` over its generations, plus the
share of answers the reference judge finds factually correct on prompts about countries seen in
SFT and on unseen ones (the miniature's accuracy; needs the world's ground truth)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from stylized_dpo.evals.reference import GroundTruth
from stylized_dpo.io import read_records
from stylized_dpo.records import Generation
from stylized_dpo.style_measures import MEASURES, measure

SPLITS = ("seen", "unseen")


def style_table(
    models: Sequence[str],
    generation_paths: Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    prompts_path: str | os.PathLike[str] | None = None,
    world_path: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """generations.csv: model, n, the style measures, accuracy_seen, accuracy_unseen.

    Without the eval prompts and world (e.g. the paper's setup, which has no ground truth) the
    accuracy columns are empty (NaN), not guessed.
    """
    truth = None
    if prompts_path is not None and world_path is not None:
        truth = GroundTruth.load(prompts_path, world_path)
    rows = []
    for model, path in zip(models, generation_paths, strict=True):
        gens = read_records(path, Generation)
        row: dict[str, object] = {"model": model, "n": len(gens)}
        row.update(measure([g.response for g in gens]))
        for split in SPLITS:
            correct: list[bool] = []
            if truth is not None:
                for g in gens:
                    p = truth.prompts.get(g.prompt_id)
                    if p is None or p.metadata.get("split") != split:
                        continue
                    correct.append(truth.correct(g, p))
            row[f"accuracy_{split}"] = sum(correct) / len(correct) if correct else math.nan
            row[f"n_{split}"] = len(correct)
        rows.append(row)
    columns = ["model", "n", *MEASURES, "accuracy_seen", "accuracy_unseen", "n_seen", "n_unseen"]
    table = pd.DataFrame(rows, columns=columns)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_path, index=False)
    return table
