"""Intervals on HELM's values from per-instance stats: HELM's worst-case and ECE values rebuilt
by hand, HELM's mean win rate against HELM's own function, and the bootstrap against exact
binomial quantiles."""

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helm_suite_fixture import write_suite

from stylized_dpo.evals.helm_cells import (
    CellData,
    SuiteData,
    ece_equal_mass_batch,
    mean_win_rates,
    merge_blocks,
    read_suite,
)
from stylized_dpo.evals.helm_intervals import add_intervals, bootstrap_suite
from stylized_dpo.evals.helm_summary import ece_equal_mass

REPO = Path(__file__).resolve().parents[1]
HELM_PYTHON = REPO / ".venv-helm" / "bin" / "python"


def test_cells_rebuild_helms_values(tmp_path: Path) -> None:
    values = [1, 0, 1, 1, 0]
    suite_dir = write_suite(
        tmp_path,
        {
            ("base", "boolq"): {
                "value": values,
                "robust": [0, 0, 1, 1, 1],  # worst with the original: 0 0 1 1 0
                "fair": [1, 1, 0, 1, 0],  # 1 0 0 1 0
                "prob": [0.9, 0.6, 0.8, 0.7, 0.55],
                "em": values,
            }
        },
    )
    suite = read_suite(suite_dir, ["base"], ["boolq"])
    cells = {f: suite.cells[("base", f, "boolq")] for f in ("accuracy", "robustness", "fairness")}
    assert cells["accuracy"].point() == pytest.approx(0.6)
    assert cells["robustness"].point() == pytest.approx(0.4)
    assert cells["fairness"].point() == pytest.approx(0.4)
    assert cells["accuracy"].metric == "quasi_exact_match"  # the schema's main metric
    ece = suite.cells[("base", "calibration", "boolq")].point()
    assert ece == pytest.approx(ece_equal_mass([0.9, 0.6, 0.8, 0.7, 0.55], values))


def test_mean_win_rate_hand_computed() -> None:
    # column 1: 0.5, 0.2, 0.2 -> model 0 beats both (1.0), models 1, 2 tie (0.25 each)
    # column 2: model 2 has no value; 0.1 vs 0.3 -> 0.0 and 1.0
    values = np.array([[0.5, 0.1], [0.2, 0.3], [0.2, math.nan]])
    assert mean_win_rates(values, False) == pytest.approx([0.5, 0.625, 0.25])
    # lower is better (ECE): column 1 gives 0, 0.75, 0.75; column 2 gives 1 and 0
    assert mean_win_rates(values, True) == pytest.approx([0.5, 0.375, 0.75])
    batch = mean_win_rates(np.stack([values, values]), False)
    assert batch.shape == (2, 3) and batch[1] == pytest.approx([0.5, 0.625, 0.25])


@pytest.mark.skipif(not HELM_PYTHON.exists(), reason="needs .venv-helm (crfm-helm)")
def test_mean_win_rate_matches_helms_own_function() -> None:
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(30):
        v = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=(6, 5))
        v[rng.random((6, 5)) < 0.15] = math.nan
        cases.append((v, bool(rng.integers(0, 2))))
    script = """
import json, sys
from helm.benchmark.presentation.summarize import compute_aggregate_row_win_rates
from helm.benchmark.presentation.table import Cell, HeaderCell, Table
out = []
for values, lower in json.load(sys.stdin):
    header = [HeaderCell("Model")] + [HeaderCell(f"c{i}", lower_is_better=lower)
                                      for i in range(len(values[0]))]
    rows = [[Cell(f"m{r}")] + [Cell(v) for v in row] for r, row in enumerate(values)]
    header[0] = HeaderCell("Model", lower_is_better=None)
    out.append(compute_aggregate_row_win_rates(Table("t", header, rows)))
print(json.dumps(out))
"""
    payload = json.dumps(
        [
            [[[None if math.isnan(x) else x for x in row] for row in v.tolist()], lower]
            for v, lower in cases
        ]
    )
    proc = subprocess.run(
        [str(HELM_PYTHON), "-c", script], input=payload, capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"crfm-helm not importable: {proc.stderr[-300:]}")
    expected = json.loads(proc.stdout)
    for (values, lower), helm in zip(cases, expected, strict=True):
        ours = mean_win_rates(values, lower)
        helm = [math.nan if h is None else h for h in helm]
        assert ours == pytest.approx(helm, nan_ok=True)


def _summary_rows(suite_dir: Path, models: list[str], values: dict) -> list[dict[str, str]]:
    rows = []
    for model in models:
        for family in ("accuracy", "calibration", "robustness", "fairness"):
            for scenario in ("mean_win_rate", "boolq", "quac"):
                value = values.get((model, family, scenario))
                rows.append(
                    {
                        "model": model,
                        "family": family,
                        "scenario": scenario,
                        "metric": "x",
                        "value": "" if value is None else repr(value),
                        "note": "" if value is not None else "not reported",
                    }
                )
    return rows


def test_intervals_only_where_helms_value_is_reproduced(tmp_path: Path) -> None:
    correct = [1] * 10 + [0] * 10
    data = {
        ("base", "boolq"): {"value": correct},
        ("sft", "boolq"): {"value": [1] * 15 + [0] * 5},
        ("base", "quac"): {"value": [0.5] * 20},
        ("sft", "quac"): {"value": [0.2] * 20},
    }
    suite_dir = write_suite(tmp_path, data)
    values = {
        ("base", "accuracy", "boolq"): 0.5,
        ("sft", "accuracy", "boolq"): 0.75,
        ("base", "accuracy", "quac"): 0.5,
        ("sft", "accuracy", "quac"): 0.3,  # not what the per-instance stats give (0.2)
        ("base", "robustness", "boolq"): 0.5,
        ("sft", "robustness", "boolq"): 0.75,
        ("base", "robustness", "mean_win_rate"): 0.0,
        ("sft", "robustness", "mean_win_rate"): 1.0,
        ("base", "accuracy", "mean_win_rate"): 0.5,
        ("sft", "accuracy", "mean_win_rate"): 0.5,
    }
    rows = _summary_rows(suite_dir, ["base", "sft"], values)
    out, counts = add_intervals(rows, suite_dir, 20000, seed=0)
    by_key = {(r["model"], r["family"], r["scenario"]): r for r in out}
    # 10 of 20 right: a resample's mean is K/20, K ~ Binomial(20, 1/2): 2.5% and 97.5%
    # quantiles 6/20 and 14/20 (P(K <= 5) = 2.07% < 2.5% < P(K <= 6) = 5.77%).
    cell = by_key[("base", "accuracy", "boolq")]
    assert (float(cell["ci_low"]), float(cell["ci_high"])) == (0.3, 0.7)
    # The unreproduced cell and the win rates built on it (both models') get none.
    assert by_key[("sft", "accuracy", "quac")]["ci_low"] == ""
    assert by_key[("sft", "accuracy", "mean_win_rate")]["ci_low"] == ""
    # Robustness (boolq only): sft's win rate is 1 unless a resample ties the two models.
    low, high = (
        float(by_key[("sft", "robustness", "mean_win_rate")][k]) for k in ("ci_low", "ci_high")
    )
    assert 0.0 <= low <= high == 1.0
    assert counts["not_reproduced"] == 3 and counts["cells"] == len(values)
    assert all(r["ci_low"] == "" for r in out if not r["value"])


def test_batched_ece_equals_helms_binning() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 3, 10, 17, 40):
        probs = rng.choice([0.3, 0.5, 0.55, 0.9, 1.0], size=(25, n))  # ties across bins
        probs[:5] = rng.random((5, n))
        correct = rng.integers(0, 2, size=(25, n))
        expected = [ece_equal_mass(list(p), list(c)) for p, c in zip(probs, correct, strict=True)]
        assert ece_equal_mass_batch(probs, correct) == pytest.approx(expected, abs=1e-12)


def test_batched_ece_in_blocks_equals_row_by_row() -> None:
    rng = np.random.default_rng(4)
    probs, correct = rng.random((900, 1000)), rng.integers(0, 2, size=(900, 1000))
    ece = ece_equal_mass_batch(probs, correct)  # 400 rows per block here
    for i in (0, 399, 400, 899):
        assert ece[i] == pytest.approx(ece_equal_mass(list(probs[i]), list(correct[i])), abs=1e-12)


def test_win_rate_interval_with_a_cell_helm_left_out(tmp_path: Path) -> None:
    # HELM reports no ECE for one model in one column (its answers all had log-prob 0): that
    # cell is missing in HELM's win rate, and must be missing in ours, not drop the interval.
    rng = np.random.default_rng(5)
    models = ["base", "sft", "dpo-x"]
    data = {}
    for m in models:
        for s in ("boolq", "quac"):
            em = [int(x) for x in rng.integers(0, 2, 20)]
            data[(m, s)] = {
                "value": em,
                "prob": [float(x) for x in rng.uniform(0.3, 1, 20)],
                "em": em,
            }
    suite_dir = write_suite(tmp_path, data)
    suite = read_suite(suite_dir, models, ["boolq", "quac"])
    values = {}
    for m in models:
        for s in ("boolq", "quac"):
            if (m, s) != ("dpo-x", "quac"):
                values[(m, "calibration", s)] = suite.cells[(m, "calibration", s)].point()
    ece = np.array(
        [[values.get((m, "calibration", s), math.nan) for s in ("boolq", "quac")] for m in models]
    )
    for m, rate in zip(models, mean_win_rates(ece, True), strict=True):
        values[(m, "calibration", "mean_win_rate")] = float(rate)
    out, counts = add_intervals(_summary_rows(suite_dir, models, values), suite_dir, 500, seed=0)
    assert counts["not_reproduced"] == 0
    by_key = {(r["model"], r["family"], r["scenario"]): r for r in out}
    for m in models:
        row = by_key[(m, "calibration", "mean_win_rate")]
        assert row["ci_low"] != "" or counts["biased"] > 0
    assert by_key[("dpo-x", "calibration", "quac")]["ci_low"] == ""


def accuracy_cell(values: list[float]) -> CellData:
    return CellData(
        "accuracy",
        "exact_match",
        tuple(f"id{i}" for i in range(len(values))),
        np.array(values, dtype=float)[:, None],
    )


def test_mmlu_subjects_merge_as_the_mean_of_their_values_and_resample_within_each() -> None:
    """HELM's MMLU column is the mean over subject runs, not the pooled mean of instances."""
    merged = merge_blocks(
        [
            ("mmlu:subject=a,model=stylized-dpo_sft", {"accuracy": accuracy_cell([1, 0])}),
            ("mmlu:subject=b,model=stylized-dpo_sft", {"accuracy": accuracy_cell([1, 1, 1, 0])}),
        ]
    )["accuracy"]
    assert merged.blocks == (2, 4)
    # instance ids name the subject, not the model: every model's cells align for paired tests
    assert merged.instance_ids[:3] == (
        "mmlu,subject=a/id0",
        "mmlu,subject=a/id1",
        "mmlu,subject=b/id0",
    )
    assert merged.point() == pytest.approx((0.5 + 0.75) / 2)  # pooled would be 4/6
    # one subject all right, one all wrong: every resample that keeps subjects apart gives 0.5
    split = merge_blocks(
        [
            ("mmlu:subject=a", {"accuracy": accuracy_cell([1, 1, 1])}),
            ("mmlu:subject=b", {"accuracy": accuracy_cell([0, 0, 0, 0, 0])}),
        ]
    )["accuracy"]
    suite = SuiteData(("sft",), ("mmlu",), {("sft", "accuracy", "mmlu"): split})
    draws = bootstrap_suite(suite, {}, 200, rng=np.random.default_rng(0))
    assert np.all(draws[("sft", "accuracy", "mmlu")] == 0.5)
