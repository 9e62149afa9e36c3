"""Tables 3-8: shape as in the paper, numbers equal to the result files, missing values marked."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from report_fixtures import (
    DATASETS,
    FAMILIES,
    MISSING_NOTE,
    MODELS,
    SCENARIOS,
    STYLES,
    make_results,
)

from stylized_dpo.io import DataError
from stylized_dpo.report import paper_tables, tables
from stylized_dpo.report.common import display_name, model_colors, model_order, run_label

BASE = "Qwen 2.5 0.5B"
PAPER_ROWS = [
    "Qwen 2.5 0.5B",
    "SFT",
    "Ultrafeedback",
    "Ultrafeedback sycophantic",
    "Ultrafeedback authoritative",
    "Ultrafeedback persuasive",
]
HELM_COLUMNS = ["Mean Win Rate", "MMLU", "BoolQ", "NaturalQuestions", "QuAC", "HellaSwag"]


@pytest.fixture
def results(tmp_path):
    truth = make_results(tmp_path / "results")
    return tmp_path / "results", truth


def metrics_paths(root):
    return {
        m: root / "train" / m / "metrics.jsonl" for m in ["sft", *(f"dpo-{d}" for d in DATASETS)]
    }


def table3(root, **kw):
    return paper_tables.build_table3(
        metrics_paths(root), root / "judge" / "win_rates.csv", styles=STYLES, base_name=BASE, **kw
    )


def rendered_frame(table):
    rows, _ = tables.render_cells(table)
    header = [table.row_header] + [c.header for c in table.columns]
    return pd.DataFrame(rows, columns=header)


def test_names_order_and_colours():
    assert [display_name(m, BASE) for m in model_order(STYLES)] == PAPER_ROWS
    colors = model_colors(STYLES)
    assert set(colors) == set(MODELS)
    assert len(set(colors.values())) == len(MODELS)
    # Adding a style keeps every existing model's colour.
    more = model_colors([*STYLES, "formal"])
    assert all(more[m] == c for m, c in colors.items())
    with pytest.raises(ValueError, match="unknown model"):
        display_name("rlhf", BASE)


def test_run_label():
    assert "miniature" in run_label({"base_model": {"source": "pretrain"}})
    assert run_label({"base_model": {"source": "hub"}}) == ""
    assert run_label({"base_model": {"source": "hub"}, "report": {"label": "pilot"}}) == "pilot"


def test_table3_shape_and_values(results):
    root, truth = results
    table = table3(root)
    frame = rendered_frame(table)
    assert list(frame.columns) == [
        "Dataset",
        "Validation loss",
        "Validation accuracy",
        f"Win rate vs {BASE}",
    ]
    assert list(frame["Dataset"]) == PAPER_ROWS[1:]
    for model, rows in truth["metrics"].items():
        last = [r for r in rows if r["split"] == "eval"][-1]
        assert table.values.at[model, "validation_loss"] == pytest.approx(last["loss"])
        assert table.values.at[model, "eval_step"] == last["step"]
        if model != "sft":
            assert table.values.at[model, "validation_accuracy"] == pytest.approx(
                last["reward_accuracy"]
            )
        wr = truth["win_rates"][model]
        assert table.values.at[model, "win_rate"] == pytest.approx(wr[6])
        assert table.values.at[model, "win_rate_ci_low"] == pytest.approx(wr[7])
        assert table.values.at[model, "win_rate_ci_high"] == pytest.approx(wr[8])
    # SFT accuracy is not applicable: NaN, rendered n/a with a footnote.
    assert math.isnan(table.values.at["sft", "validation_accuracy"])
    assert frame.iloc[0, 2] == "n/a\x00a"
    assert "not applicable" in table.notes[("sft", "validation_accuracy")]
    # Unscored win-rate prompts are footnoted.
    assert table.notes[("dpo-authoritative", "win_rate")].startswith("2 of 52 prompts")
    # Win rates are rendered with their interval.
    wr = truth["win_rates"]["dpo-persuasive"]
    assert frame.iloc[-1, 3] == f"{wr[6]:.2f} [{wr[7]:.2f}, {wr[8]:.2f}]"


def test_table3_ignores_other_baselines_and_marks_missing_win_rate(results):
    root, _ = results
    path = root / "judge" / "win_rates.csv"
    frame = pd.read_csv(path)
    # Only the row against sft remains for dpo-ultrafeedback: Table 3 (vs base) must not use it.
    frame = frame[~((frame["model"] == "dpo-ultrafeedback") & (frame["baseline"] == "base"))]
    frame.to_csv(path, index=False)
    table = table3(root)
    assert math.isnan(table.values.at["dpo-ultrafeedback", "win_rate"])
    assert "no row for dpo-ultrafeedback vs base" in table.notes[("dpo-ultrafeedback", "win_rate")]


def test_table3_run_without_eval_rows(results):
    root, _ = results
    path = root / "train" / "dpo-sycophantic" / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["split"] == "train"))
    table = table3(root)
    assert math.isnan(table.values.at["dpo-sycophantic", "validation_loss"])
    assert "no evaluation rows" in table.notes[("dpo-sycophantic", "validation_loss")]


def test_table3_bad_metrics_row_names_file_line_field(results):
    root, _ = results
    path = root / "train" / "dpo-persuasive" / "metrics.jsonl"
    lines = path.read_text().splitlines()
    bad = json.loads(lines[0])
    bad.update(split="eval", loss="high")
    lines.insert(2, json.dumps(bad))
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"metrics.jsonl, line 3, field 'loss'"):
        table3(root)


def test_table3_dpo_eval_row_needs_reward_accuracy(results):
    root, _ = results
    path = root / "train" / "dpo-ultrafeedback" / "metrics.jsonl"
    path.write_text(json.dumps({"step": 0, "split": "eval", "loss": 0.69}) + "\n")
    with pytest.raises(DataError, match=r"line 1, field 'reward_accuracy'"):
        table3(root)


def test_resumed_run_uses_last_logged_copy_of_a_step(tmp_path):
    from stylized_dpo.report.inputs import eval_rows, read_train_metrics

    path = tmp_path / "m.jsonl"
    rows = [
        {"step": 10, "split": "eval", "loss": 0.5, "reward_accuracy": 0.6},
        {"step": 20, "split": "eval", "loss": 0.4, "reward_accuracy": 0.7},
        {"step": 10, "split": "eval", "loss": 0.45, "reward_accuracy": 0.65},  # after a resume
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    evals = eval_rows(read_train_metrics(path, dpo=True))
    assert [(r.step, r.loss) for r in evals] == [(10, 0.45), (20, 0.4)]


def test_table4_shape_and_values(results):
    root, truth = results
    table = paper_tables.build_table4(root / "helm" / "summary.csv", styles=STYLES, base_name=BASE)
    frame = rendered_frame(table)
    assert list(frame.columns) == ["Dataset", "Accuracy", "Calibration", "Robustness", "Fairness"]
    assert list(frame["Dataset"]) == PAPER_ROWS
    for model in MODELS:
        for family in FAMILIES:
            expected = truth["helm"][(model, family, "mean_win_rate")]
            assert table.values.at[model, family] == pytest.approx(expected)
    assert not table.notes


@pytest.mark.parametrize(
    "number,family", [(5, "accuracy"), (6, "calibration"), (7, "robustness"), (8, "fairness")]
)
def test_family_tables_shape_values_and_missing(results, number, family):
    root, truth = results
    table = paper_tables.build_helm_table(
        number, root / "helm" / "summary.csv", styles=STYLES, base_name=BASE
    )
    assert table.number == number
    assert table.title.endswith(family.capitalize())
    frame = rendered_frame(table)
    assert list(frame.columns) == ["Dataset", *HELM_COLUMNS]
    assert list(frame["Dataset"]) == PAPER_ROWS
    for model in MODELS:
        for key in ["mean_win_rate", *SCENARIOS]:
            expected = truth["helm"][(model, family, key)]
            value = table.values.at[model, key]
            if expected is None:
                assert math.isnan(value)
                assert table.notes[(model, key)] == MISSING_NOTE
            else:
                assert value == pytest.approx(expected)
    if family == "calibration":
        assert (frame["HellaSwag"] == "n/a\x00a").all()
        assert "ece_10_bin" in table.caption


def test_helm_table_marks_absent_rows(results):
    root, _ = results
    path = root / "helm" / "summary.csv"
    frame = pd.read_csv(path, keep_default_na=False)
    frame = frame[~((frame["model"] == "sft") & (frame["scenario"] == "quac"))]
    frame.to_csv(path, index=False)
    table = paper_tables.build_helm_table(7, path, styles=STYLES, base_name=BASE)
    assert math.isnan(table.values.at["sft", "quac"])
    assert "no robustness/quac row for sft" in table.notes[("sft", "quac")]


def test_helm_summary_errors_name_line_and_field(results):
    root, _ = results
    path = root / "helm" / "summary.csv"
    lines = path.read_text().splitlines()
    lines[4] = "sft,accuracy,boolq,exact_match,0.7x,"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"summary.csv, line 5, field 'value': not a number"):
        paper_tables.build_table4(path, styles=STYLES, base_name=BASE)
    lines[4] = lines[3]  # a duplicate row
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 5, field 'scenario'.*repeats line 4"):
        paper_tables.build_table4(path, styles=STYLES, base_name=BASE)
    path.write_text("model,family,scenario,value,note\n")
    with pytest.raises(DataError, match="field 'metric': column is missing"):
        paper_tables.build_table4(path, styles=STYLES, base_name=BASE)


def test_table_refuses_silent_blank():
    values = pd.DataFrame({"x": [math.nan]}, index=["sft"])
    with pytest.raises(ValueError, match="missing without a note"):
        tables.Table(3, "T", "c", (tables.Column("x", "X"),), values, {"sft": "SFT"})


def test_written_files_agree_with_values(results, tmp_path):
    root, _ = results
    table = paper_tables.build_helm_table(
        6,
        root / "helm" / "summary.csv",
        styles=STYLES,
        base_name=BASE,
        label="Embedded default: a miniature",
    )
    out = tmp_path / "out"
    paths = {ext: out / f"table6.{ext}" for ext in ("csv", "tex", "md", "pdf")}
    tables.write_table(table, **paths)
    for path in paths.values():
        assert path.stat().st_size > 0
    assert paths["pdf"].read_bytes().startswith(b"%PDF")
    # CSV: numbers round-trip, missing cells are "n/a" with the reason in `notes`.
    text = paths["csv"].read_text()
    assert ",," not in text and "n/a" in text
    back = tables.read_table_csv(paths["csv"]).set_index("model")
    pd.testing.assert_frame_equal(
        back[list(table.values.columns)], table.values, check_names=False, rtol=1e-5
    )
    assert list(back["dataset"]) == PAPER_ROWS
    assert MISSING_NOTE in back.at["sft", "notes"]
    # Markdown and LaTeX: a row per model, n/a with a footnote marker and the footnote itself.
    md = paths["md"].read_text()
    assert md.count("\n| ") == 1 + len(MODELS)
    assert "n/a<sup>a</sup>" in md and f"<sup>a</sup> {MISSING_NOTE}" in md
    assert "miniature" in md
    tex = paths["tex"].read_text()
    assert tex.count(r" \\") >= 1 + len(MODELS)
    assert r"n/a\textsuperscript{a}" in tex and r"ece\_10\_bin" in tex
    assert r"\begin{tabular}{lrrrrrr}" in tex


def test_latex_escapes_specials():
    assert tables.tex_escape("a_b & 50% ± $") == r"a\_b \& 50\% $\pm$ \$"
