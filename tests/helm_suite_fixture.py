"""A HELM suite folder in crfm-helm 0.5.16's layout (schema.json, one run folder per model and
scenario with run_spec.json and per_instance_stats.json), written from given per-instance values,
for the interval and significance tests."""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA = {
    "run_groups": [
        {"name": "boolq", "environment": {"main_name": "quasi_exact_match", "main_split": "valid"}},
        {"name": "quac", "environment": {"main_name": "f1_score", "main_split": "valid"}},
    ]
}
RUN_NAMES = {"boolq": "boolq:model={m},data_augmentation=canonical", "quac": "quac:model={m}"}
GROUPS = {"boolq": "boolq", "quac": "quac"}


def _stat(name: str, value: float, split: str = "valid", perturbation: dict | None = None) -> dict:
    n = {"name": name, "split": split}
    if perturbation:
        n["perturbation"] = perturbation
    return {"name": n, "count": 1, "sum": value}


ROBUST = {"name": "mild_mix", "robustness": True, "fairness": False, "computed_on": "perturbed"}
FAIR = {"name": "dialect", "robustness": False, "fairness": True, "computed_on": "perturbed"}


def write_suite(
    root: Path, data: dict[tuple[str, str], dict[str, list]], metric: dict[str, str] | None = None
) -> Path:
    """data[(model, scenario)] = {"value": [...], "robust": [...], "fair": [...], "prob": [...],
    "em": [...]}: per instance the main metric, its value under one robustness and one fairness
    perturbation, max_prob and exact_match (the last three optional)."""
    metric = metric or {"boolq": "quasi_exact_match", "quac": "f1_score"}
    suite = root / "suite"
    suite.mkdir(parents=True)
    (suite / "schema.json").write_text(json.dumps(SCHEMA))
    for (model, scenario), cols in data.items():
        run = suite / RUN_NAMES[scenario].format(m=f"stylized-dpo_{model}")
        run.mkdir()
        (run / "run_spec.json").write_text(json.dumps({"groups": [GROUPS[scenario]]}))
        items = []
        for i, value in enumerate(cols["value"]):
            stats = [_stat(metric[scenario], value), _stat("num_references", 1)]
            if "prob" in cols:
                stats += [_stat("max_prob", cols["prob"][i]), _stat("exact_match", cols["em"][i])]
            items.append({"instance_id": f"id{i}", "train_trial_index": 0, "stats": stats})
            for key, pert in (("robust", ROBUST), ("fair", FAIR)):
                if key in cols:
                    items.append(
                        {
                            "instance_id": f"id{i}",
                            "train_trial_index": 0,
                            "perturbation": pert,
                            "stats": [_stat(metric[scenario], cols[key][i], perturbation=pert)],
                        }
                    )
        (run / "per_instance_stats.json").write_text(json.dumps(items))
    return suite
