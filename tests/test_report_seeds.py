"""The cross-seed summary: every table value per seed, its mean and a Student-t interval,
against hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from stylized_dpo.report.seeds import long_values, seeds_summary, t_interval, write_seeds_summary


def test_t_interval_by_hand():
    # values 0.2, 0.4, 0.9: mean 0.5, sd sqrt(((-.3)^2 + (-.1)^2 + .4^2) / 2) = sqrt(0.13),
    # t(0.975, 2) = 4.302653, half-width 4.302653 * sqrt(0.13) / sqrt(3) = 0.895669
    interval = t_interval([0.2, 0.4, 0.9])
    assert interval.n == 3
    assert interval.mean == pytest.approx(0.5)
    assert interval.ci_low == pytest.approx(0.5 - 0.895669, abs=1e-6)
    assert interval.ci_high == pytest.approx(0.5 + 0.895669, abs=1e-6)


def test_t_interval_counts_only_finite_values_and_needs_two():
    two = t_interval([1.0, math.nan, 3.0])  # t(0.975, 1) = 12.706205, sd sqrt(2), n 2
    assert two.n == 2 and two.mean == pytest.approx(2.0)
    assert two.ci_high - two.mean == pytest.approx(12.706205 * math.sqrt(2) / math.sqrt(2))
    one = t_interval([0.7])
    assert one.n == 1 and one.mean == 0.7 and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    assert t_interval([]).n == 0


def table(values: dict[str, float], beta: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model name": ["SFT", "Ultrafeedback"],
            "model": ["sft", "dpo-ultrafeedback"],
            "win_rate": [values["sft"], values["dpo"]],
            "beta": [beta, beta],
            "notes": ["", "win_rate: 1 tie"],
        }
    )


def test_summary_rows_per_value_with_every_seed():
    tables = {
        0: {"table3": table({"sft": 0.2, "dpo": 0.5}, 0.1)},
        1: {"table3": table({"sft": 0.4, "dpo": math.nan}, 0.1)},
        2: {"table3": table({"sft": 0.9, "dpo": 0.7}, 0.1)},
    }
    summary = seeds_summary(tables)
    assert list(summary.columns) == [
        "source", "row", "measure", "seed_0", "seed_1", "seed_2",
        "n_seeds", "mean", "ci_low", "ci_high",
    ]  # fmt: skip
    assert list(zip(summary["row"], summary["measure"], strict=True)) == [
        ("SFT / sft", "win_rate"),
        ("SFT / sft", "beta"),
        ("Ultrafeedback / dpo-ultrafeedback", "win_rate"),
        ("Ultrafeedback / dpo-ultrafeedback", "beta"),
    ]  # the first seed's order; `notes` is not a value
    sft = summary.set_index(["row", "measure"]).loc[("SFT / sft", "win_rate")]
    assert [sft.seed_0, sft.seed_1, sft.seed_2] == [0.2, 0.4, 0.9]
    assert sft["mean"] == pytest.approx(0.5)
    assert sft.ci_high == pytest.approx(0.5 + 0.895669, abs=1e-6)
    dpo = summary.set_index(["row", "measure"]).loc[
        ("Ultrafeedback / dpo-ultrafeedback", "win_rate")
    ]
    assert dpo.n_seeds == 2 and dpo["mean"] == pytest.approx(0.6)  # seed 1 has no value
    beta = summary.set_index(["row", "measure"]).loc[("SFT / sft", "beta")]
    assert beta.ci_low == pytest.approx(0.1) and beta.ci_high == pytest.approx(0.1)


def test_a_row_named_twice_is_an_error():
    frame = pd.DataFrame({"model": ["sft", "sft"], "x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="table3: row 'sft' appears twice"):
        long_values(frame, "table3")


def test_written_files_read_na_as_missing(tmp_path):
    paths = {}
    for seed, value in [(0, "0.25"), (3, "n/a"), (4, "0.75")]:
        path = tmp_path / f"s{seed}.csv"
        path.write_text(f"model,helpfulness\nsft,{value}\n")
        paths[seed] = {"judge_summary": path}
    summary = write_seeds_summary(paths, tmp_path / "out.csv", tmp_path / "out.md")
    row = summary.iloc[0]
    assert row.n_seeds == 2 and row["mean"] == pytest.approx(0.5)
    assert (
        (tmp_path / "out.csv")
        .read_text()
        .splitlines()[1]
        .startswith("judge_summary,sft,helpfulness,0.25,n/a,0.75,2,0.5,")
    )
    md = (tmp_path / "out.md").read_text()
    assert "| judge_summary | sft | helpfulness | 0.250 | n/a | 0.750 | 0.500 | [" in md
