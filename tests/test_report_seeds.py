"""The cross-seed summary: every table value per seed, its mean and a Student-t interval,
against hand-computed values."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer

from stylized_dpo.io import DataError
from stylized_dpo.report.seeds import (
    long_values,
    seeds_summary,
    t_interval,
    table_across_seeds,
    write_seeds_summary,
)
from stylized_dpo.report.seeds_claims import (
    claims_across_seeds,
    overall_verdict,
    read_claims,
    read_significance,
    significance_across_seeds,
    write_claims_seeds,
    write_significance_seeds,
)
from stylized_dpo.report.seeds_figure import plot_seeds, seed_points
from stylized_dpo.report.tables import Column, Table, to_markdown, write_table


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


# ---- across seeds: the interval, Tables 3-8, the comparisons and the claims -------------------


def test_t_interval_of_one_two_three_by_hand():
    # mean 2, sd 1, t(0.975, 2) = 4.302653 (tables), half-width 4.302653 / sqrt(3) = 2.484138
    interval = t_interval([1.0, 2.0, 3.0])
    assert interval.mean == pytest.approx(2.0)
    assert interval.ci_low == pytest.approx(2.0 - 2.484138, abs=1e-6)
    assert interval.ci_high == pytest.approx(2.0 + 2.484138, abs=1e-6)


def paper_table(accuracy: dict[str, float], note: str = "") -> Table:
    values = pd.DataFrame({"accuracy": accuracy, "calibration": {"base": 0.3, "sft": 0.7}})
    notes = {("sft", "accuracy"): note} if note else {}
    return Table(
        number=4,
        title="Table 4: Metrics",
        caption="Per-seed caption.",
        columns=(Column("accuracy", "Accuracy", 2), Column("calibration", "Calibration", 2)),
        values=values,
        row_names={"base": "Base", "sft": "SFT"},
        notes=notes,
    )


def test_table_across_seeds_cell_by_hand(tmp_path):
    # base accuracy 0.40 and 0.60: mean 0.5, sd 0.141421, t(0.975, 1) = 12.706205,
    # half-width 12.706205 * 0.141421 / sqrt(2) = 1.270621
    tables = {
        0: paper_table({"base": 0.40, "sft": 0.8}),
        1: paper_table({"base": 0.60, "sft": math.nan}, note="HELM left it out"),
    }
    table = table_across_seeds(tables, label="two seeds")
    assert [c.header for c in table.columns] == ["Accuracy", "Calibration"]
    assert table.rows == ["base", "sft"] and table.row_names == {"base": "Base", "sft": "SFT"}
    assert table.values.at["base", "accuracy_mean"] == pytest.approx(0.5)
    assert table.values.at["base", "accuracy_ci_low"] == pytest.approx(0.5 - 1.270621, abs=1e-6)
    assert table.values.at["base", "accuracy_ci_high"] == pytest.approx(0.5 + 1.270621, abs=1e-6)
    # a cell one seed lacks: the other seed's value, no interval, a footnote naming the seed
    assert table.values.at["sft", "accuracy_mean"] == 0.8
    assert table.values.at["sft", "accuracy_n_seeds"] == 1
    assert math.isnan(table.values.at["sft", "accuracy_ci_low"])
    assert table.notes[("sft", "accuracy_mean")] == (
        "mean of 1 of 2 seeds (n/a in seed 1: HELM left it out)"
    )
    md = to_markdown(table)
    assert "| Base | 0.50 [-0.77, 1.77] | 0.30 [0.30, 0.30] |" in md
    assert "| SFT | 0.80<sup>a</sup> | 0.70 [0.70, 0.70] |" in md
    assert "Table 4: Metrics, mean over 2 training seeds (95% t-interval)" in md
    write_table(table, csv=tmp_path / "t.csv")
    frame = pd.read_csv(tmp_path / "t.csv")
    assert list(frame.columns[:6]) == [
        "dataset", "model", "accuracy_mean", "accuracy_ci_low", "accuracy_ci_high",
        "accuracy_n_seeds",
    ]  # fmt: skip


def test_tables_of_different_shapes_are_an_error():
    other = paper_table({"base": 0.4, "sft": 0.8}).values.drop(index="sft")
    with pytest.raises(ValueError, match="seed 1's rows or columns differ from seed 0's"):
        table_across_seeds(
            {
                0: paper_table({"base": 0.4, "sft": 0.8}),
                1: replace(paper_table({"base": 0.4, "sft": 0.8}), values=other),
            }
        )


SIGNIFICANCE_HEADER = "model,reference,source,family,scenario,metric,difference,better\n"


def test_significance_across_seeds_counts_each_direction(tmp_path):
    judge, ece = "sft,base,judge,helpfulness,,score 1-5", "sft,base,helm,calibration,mmlu,ECE"
    rows = {
        0: [f"{judge},1.0,model", f"{ece},0.1,reference"],
        1: [f"{judge},2.0,model", f"{ece},-0.1,none"],
        2: [f"{judge},3.0,none", f"{ece},0.3,reference"],
    }
    tables = {}
    for seed, lines in rows.items():
        path = tmp_path / f"significance_{seed}.csv"
        path.write_text(SIGNIFICANCE_HEADER + "\n".join(lines) + "\n")
        tables[seed] = read_significance(path)
    out = significance_across_seeds(tables)
    judge = out.iloc[0]
    assert [judge.difference_seed_0, judge.difference_seed_1, judge.difference_seed_2] == [1, 2, 3]
    assert judge["mean"] == pytest.approx(2.0)
    assert judge.ci_high == pytest.approx(2.0 + 2.484138, abs=1e-6)
    assert (judge.seeds_model_better, judge.seeds_reference_better) == (2, 0)
    ece = out.iloc[1]
    assert (ece.seeds_model_better, ece.seeds_reference_better, ece.n_seeds) == (0, 2, 3)
    write_significance_seeds(
        out, tmp_path / "s.csv", tmp_path / "s.md", tmp_path / "s.tex", base_name="Base", label=""
    )
    md = (tmp_path / "s.md").read_text()
    assert (
        "| SFT vs Base | judge helpfulness | 1.000 | 2.000 | 3.000 | 2.000 [-0.484, 4.484] "
        "| 2 / 0 of 3 |"
    ) in md


def test_bad_better_names_file_line_and_field(tmp_path):
    path = tmp_path / "significance.csv"
    path.write_text(SIGNIFICANCE_HEADER + "sft,base,judge,helpfulness,,score 1-5,1.0,sft\n")
    with pytest.raises(DataError, match=r"significance.csv, line 2, field 'better'"):
        read_significance(path)


CLAIMS_HEADER = (
    "id,model,reference,measure,direction,difference,ci_low,ci_high,p_holm,status,quote\n"
)


def write_claims_csv(path, statuses: dict[str, str]) -> None:
    fields = "dpo-sycophantic,sft,judge:helpfulness,lower,-1.5,-1.7,-1.3,0.01"
    lines = [f'{claim},{fields},{status},"q, {claim}"' for claim, status in statuses.items()]
    path.write_text(CLAIMS_HEADER + "\n".join(lines) + "\n")


def test_claims_hold_across_seeds_only_if_every_seed_supports_them(tmp_path):
    ok, no, bad, na = "supported", "inconclusive", "contradicted", "not measured"
    statuses = [
        {"all": ok, "two": ok, "mixed": ok, "none": no},
        {"all": ok, "two": no, "mixed": bad, "none": no},
        {"all": ok, "two": ok, "mixed": no, "none": na},
    ]
    claims = {}
    for seed, status in enumerate(statuses):
        write_claims_csv(tmp_path / f"claims_{seed}.csv", status)
        claims[seed] = read_claims(tmp_path / f"claims_{seed}.csv")
    out = claims_across_seeds(claims).set_index("id")
    assert out.at["all", "overall"] == "holds in all seeds"
    assert out.at["two", "overall"] == "supported in 2 of 3 seeds"  # not "holds in all seeds"
    assert (out.at["two", "n_supported"], out.at["two", "n_inconclusive"]) == (2, 1)
    assert out.at["mixed", "overall"] == "conflicting: supported in 1, contradicted in 1 of 3"
    assert out.at["none", "overall"] == "not shown in any seed"
    assert out.at["none", "n_not_measured"] == 1
    assert list(out.loc["two", ["status_seed_0", "status_seed_1", "status_seed_2"]]) == [
        "supported", "inconclusive", "supported",
    ]  # fmt: skip
    assert out.at["all", "difference_mean"] == pytest.approx(-1.5)
    assert out.at["all", "quote"] == "q, all"
    write_claims_seeds(
        out.reset_index(), tmp_path / "c.csv", tmp_path / "c.md", base_name="Base", label=""
    )
    md = (tmp_path / "c.md").read_text()
    assert (
        "| Ultrafeedback sycophantic lower than SFT: judge helpfulness | supported | "
        "inconclusive | supported | supported in 2 of 3 seeds |"
    ) in md
    assert "holds in all seeds: 1;" in md


def test_overall_verdict_by_hand():
    assert overall_verdict(["contradicted"] * 3) == "contradicted in all seeds"
    assert overall_verdict(["inconclusive"] * 2) == "inconclusive in all seeds"
    assert overall_verdict(["contradicted", "inconclusive"]) == "contradicted in 1 of 2 seeds"


def test_claims_that_differ_between_seeds_are_an_error(tmp_path):
    write_claims_csv(tmp_path / "a.csv", {"x": "supported", "y": "supported"})
    write_claims_csv(tmp_path / "b.csv", {"x": "supported"})
    with pytest.raises(ValueError, match="claims of seed 1 .x. are not those of seed 0 .x, y."):
        claims_across_seeds(
            {0: read_claims(tmp_path / "a.csv"), 1: read_claims(tmp_path / "b.csv")}
        )


def test_bad_status_names_file_line_and_field(tmp_path):
    write_claims_csv(tmp_path / "claims.csv", {"x": "supported", "y": "holds"})
    with pytest.raises(DataError, match=r"claims.csv, line 3, field 'status'.*'holds'"):
        read_claims(tmp_path / "claims.csv")


def test_seed_figure_draws_each_seed_and_the_interval_by_hand(tmp_path):
    paths: dict[str, dict[int, object]] = {"judge": {}, "table3": {}, "table4": {}}
    for seed, helpfulness in [(0, 1.0), (1, 2.0), (2, 3.0)]:
        judge = tmp_path / f"judge_{seed}.csv"
        judge.write_text(
            "model,criterion,mean,std,ci_low,ci_high,n,n_failed\n"
            f"sft,helpfulness,{helpfulness},1,0,5,10,0\nbase,helpfulness,1.5,1,0,5,10,0\n"
        )
        table3 = tmp_path / f"table3_{seed}.csv"
        table3.write_text(
            "dataset,model,validation_loss,validation_accuracy,win_rate,notes\n"
            f"SFT,sft,0.5,n/a,0.9,\nUltrafeedback,dpo-ultrafeedback,0.{seed + 4},0.7,0.8,\n"
        )
        table4 = tmp_path / f"table4_{seed}.csv"
        table4.write_text(
            "dataset,model,accuracy,calibration,robustness,fairness,notes\n"
            "Base,base,0.3,0.4,0.5,0.6,\n"
        )
        for key, path in [("judge", judge), ("table3", table3), ("table4", table4)]:
            paths[key][seed] = path
    points = seed_points(
        paths["judge"], paths["table3"], paths["table4"], styles=[], base_name="Base"
    )
    sft = points[(points.panel == "Judge helpfulness (1-5)") & (points.model == "sft")]
    assert list(sft.value) == [1.0, 2.0, 3.0]
    loss = points[points.panel == "DPO validation loss"]
    assert list(loss.model.unique()) == ["dpo-ultrafeedback"]  # SFT's LM loss is not DPO's
    assert list(loss.value) == [0.4, 0.5, 0.6]
    assert (
        points[(points.panel == "HELM mean win rate: accuracy") & (points.model == "sft")]["value"]
        .isna()
        .all()
    )  # a model the table lacks is missing, not zero
    fig = plot_seeds(points, styles=[], base_name="Base")
    ax = next(a for a in fig.axes if a.get_title() == "Judge helpfulness (1-5)")
    means = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(means) == 2  # base and sft; plain DPO has no judge row: "n/a", no bar
    sft_bar = means[1]
    assert sft_bar.lines[0].get_ydata()[0] == pytest.approx(2.0)
    segment = sft_bar.lines[2][0].get_segments()[0]
    assert [segment[0][1], segment[1][1]] == pytest.approx([2.0 - 2.484138, 2.0 + 2.484138])
