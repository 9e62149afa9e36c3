"""The statistics figures draw the numbers of their tables (read back from the artists)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_fixtures import SCENARIOS, STYLES, make_results

from stylized_dpo.records import JUDGE_CRITERIA
from stylized_dpo.report import helm_figure as hf
from stylized_dpo.report.inputs import read_helm_summary
from stylized_dpo.report.statistics import helm_ci_table, plot_claims
from stylized_dpo.report.style_bias import plot_style_bias

BASE = "Qwen 2.5 0.5B"


def _style_table() -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    for style in STYLES:
        for scorer, measure in [("judge (j)", m) for m in ("total", *JUDGE_CRITERIA)] + [
            ("reward (r)", "reward")
        ]:
            share, diff = rng.uniform(0.2, 0.8), rng.uniform(-1, 1)
            rows.append(
                {
                    "style": style,
                    "scorer": scorer,
                    "measure": measure,
                    "win_share": share,
                    "ci_low": share - 0.1,
                    "ci_high": share + 0.1,
                    "mean_difference": diff,
                    "diff_ci_low": diff - 0.2,
                    "diff_ci_high": diff + 0.2,
                }
            )
    return pd.DataFrame(rows)


def test_style_bias_figure_draws_the_table() -> None:
    table = _style_table()
    colors = dict(zip(STYLES, ["#111111", "#222222", "#333333"], strict=True))
    fig = plot_style_bias(table, styles=STYLES, colors=colors)
    ax_share, ax_diff = fig.axes
    bars = {p.get_gid(): p.get_height() for p in ax_diff.patches if p.get_gid()}
    for _, r in table[table["measure"].isin(JUDGE_CRITERIA)].iterrows():
        assert bars[f"diff:{r['style']}:{r['measure']}"] == pytest.approx(r["mean_difference"])
    drawn = sorted(
        round(float(line.get_ydata()[0]), 9)
        for line in ax_share.get_lines()
        if line.get_marker() in ("o", "s")  # the points, not the error bars' caps
    )
    expected = table[table["measure"].isin(("total", "reward"))]["win_share"].round(9)
    assert sorted(expected) == pytest.approx(drawn)


def test_helm_heatmap_prints_the_intervals(tmp_path: Path) -> None:
    make_results(tmp_path / "results")
    path = tmp_path / "results" / "helm" / "summary.csv"
    frame = pd.read_csv(path)
    frame["ci_low"] = frame["value"] - 0.05
    frame["ci_high"] = frame["value"] + 0.05
    frame.to_csv(path, index=False)
    fig = hf.plot_helm(read_helm_summary(path), styles=STYLES, base_name=BASE, scenarios=SCENARIOS)
    ax = fig.axes[0]
    texts = {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid()}
    models, columns, values = hf.helm_matrix(read_helm_summary(path), STYLES, SCENARIOS)
    for i in range(len(models)):
        for j in range(len(columns)):
            if np.isnan(values[i, j]):
                assert f"ci:{i},{j}" not in texts
            else:
                assert (
                    texts[f"ci:{i},{j}"] == f"{values[i, j] - 0.05:.2f}–{values[i, j] + 0.05:.2f}"
                )
    companion = helm_ci_table(path, models)
    assert set(companion["table"]) == {4, 5, 6, 7, 8}
    assert len(companion[companion["table"] == 4]) == 4 * len(models)  # one per family


def test_claims_figure_one_point_per_measured_claim() -> None:
    claims = pd.DataFrame(
        [
            {
                "id": "a",
                "model": "sft",
                "reference": "base",
                "measure": "judge:helpfulness",
                "direction": "higher",
                "difference": 1.5,
                "ci_low": 1.0,
                "ci_high": 2.0,
                "p_holm": 0.01,
                "status": "supported",
                "quote": "q",
            },
            {
                "id": "b",
                "model": "dpo-ultrafeedback",
                "reference": "sft",
                "measure": "helm:calibration:mean_win_rate",
                "direction": "lower",
                "difference": 0.1,
                "ci_low": -0.2,
                "ci_high": 0.3,
                "p_holm": 1.0,
                "status": "inconclusive",
                "quote": "q",
            },
            {
                "id": "c",
                "model": "sft",
                "reference": "base",
                "measure": "helm:accuracy:mmlu",
                "direction": "higher",
                "difference": float("nan"),
                "ci_low": float("nan"),
                "ci_high": float("nan"),
                "p_holm": float("nan"),
                "status": "not measured",
                "quote": "q",
            },
        ]
    )
    fig = plot_claims(claims, base_name=BASE, alpha=0.05)
    drawn = {
        line.get_gid(): line.get_xdata()[0]
        for ax in fig.axes
        for line in ax.get_lines()
        if line.get_gid() and line.get_marker() == "o"  # the point, not the caps
    }
    assert drawn == {"claim:a": 1.5, "claim:b": 0.1}
