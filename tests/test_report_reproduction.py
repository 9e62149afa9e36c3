"""The paper's published numbers (config/paper_results.yaml) beside the measured tables."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from report_fixtures import DATASETS, MODELS, STYLES, make_results

from stylized_dpo.io import DataError
from stylized_dpo.report import paper_tables, reproduction, tables
from stylized_dpo.report.common import comparison_kind

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config" / "paper_results.yaml"
HELM_KEYS = {"mean_win_rate", "mmlu", "boolq", "natural_qa", "quac", "hellaswag"}


def test_paper_results_cover_tables_3_to_8():
    paper = reproduction.load_paper_results(PAPER)
    assert sorted(paper) == [3, 4, 5, 6, 7, 8]
    assert list(paper[3]) == ["sft", *(f"dpo-{d}" for d in DATASETS)]
    assert all(
        set(r) == {"validation_loss", "validation_accuracy", "win_rate"} for r in paper[3].values()
    )
    assert paper[3]["sft"]["validation_accuracy"] is None  # N/A in the paper
    for n in (4, 5, 6, 7, 8):
        assert set(paper[n]) == set(MODELS)
    assert all(
        set(r) == {"accuracy", "calibration", "robustness", "fairness"} for r in paper[4].values()
    )
    assert all(set(r) == HELM_KEYS for n in (5, 6, 7, 8) for r in paper[n].values())
    # Spot checks against the paper's text (abstract and Tables 4, 6, 7).
    assert paper[4]["sft"]["accuracy"] == 0.78
    assert paper[4]["dpo-ultrafeedback"]["calibration"] == 0.16
    assert paper[6]["dpo-authoritative"]["quac"] == 0.180
    assert paper[7]["dpo-persuasive"]["mean_win_rate"] == 0.760
    # The mean win rates of Tables 5-8 are Table 4's columns.
    for n, family in paper_tables.HELM_TABLE_FAMILY.items():
        for model in MODELS:
            assert paper[n][model]["mean_win_rate"] == paper[4][model][family]


def test_paper_results_bad_value(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"tables": {4: {"rows": {"sft": {"accuracy": "high"}}}}}))
    with pytest.raises(DataError, match=r"field 'tables.4.rows.sft.accuracy'"):
        reproduction.load_paper_results(path)
    path.write_text(yaml.safe_dump({"tables": {2: {"rows": {}}}}))
    with pytest.raises(DataError, match="table number"):
        reproduction.load_paper_results(path)


@pytest.fixture
def table_csvs(tmp_path):
    root = tmp_path / "results"
    make_results(root)
    out = tmp_path / "tables"
    metrics = {m: root / "train" / m / "metrics.jsonl" for m in ["sft", *MODELS[2:]]}
    t3 = paper_tables.build_table3(
        metrics, root / "judge" / "win_rates.csv", styles=STYLES, base_name="tiny"
    )
    tables.write_table(t3, csv=out / "table3.csv")
    for n in (4, 5, 6, 7, 8):
        t = paper_tables.build_helm_table(
            n, root / "helm" / "summary.csv", styles=STYLES, base_name="tiny"
        )
        tables.write_table(t, csv=out / f"table{n}.csv")
    return {n: out / f"table{n}.csv" for n in (3, 4, 5, 6, 7, 8)}


def test_reproduction_frame(table_csvs, tmp_path):
    frame = reproduction.reproduction_frame(table_csvs, PAPER, comparison="miniature")
    assert len(frame) == 15 + 24 + 4 * 36  # every published cell, N/A included
    assert set(frame["comparison"]) == {"miniature"}
    measured = {n: tables.read_table_csv(p).set_index("model") for n, p in table_csvs.items()}
    paper = reproduction.load_paper_results(PAPER)
    for row in frame.itertuples():
        expected = measured[row.table].at[row.model, row.column]
        assert (math.isnan(row.measured) and math.isnan(expected)) or row.measured == expected
        published = paper[row.table][row.model][row.column]
        if published is None:
            assert math.isnan(row.paper) and row.paper_note == "N/A in the paper"
        else:
            assert row.paper == published
            if not math.isnan(row.measured):
                assert row.difference == pytest.approx(row.measured - published)
    # Missing measured cells carry the table's footnote.
    hellaswag = frame[(frame["table"] == 6) & (frame["column"] == "hellaswag")]
    assert hellaswag["measured"].isna().all()
    assert hellaswag["measured_note"].str.contains("no ECE for HellaSwag").all()
    sft_acc = frame[
        (frame["table"] == 3)
        & (frame["model"] == "sft")
        & (frame["column"] == "validation_accuracy")
    ]
    assert sft_acc["measured_note"].iloc[0].startswith("not applicable")

    csv = tmp_path / "reproduction.csv"
    reproduction.write_reproduction_csv(frame, csv)
    text = pd.read_csv(csv, dtype=str, keep_default_na=False)
    numbers = text[["paper", "measured", "difference"]]
    assert (numbers != "").all().all() and (numbers == "n/a").any().all()
    counts = reproduction.reproduction_figure(
        frame, tmp_path / "r.pdf", tmp_path / "r.png", styles=STYLES, label="embedded default"
    )
    assert counts[3] == 14 and counts[6] == 30 and counts[5] == 36
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "r.png").stat().st_size > 20000


def test_comparison_kind():
    assert comparison_kind({"base_model": {"source": "pretrain"}}) == "miniature"
    assert comparison_kind({"base_model": {"source": "hub"}}) == "reproduction"
    hub_subset = {"base_model": {"source": "hub"}, "report": {"comparison": "miniature"}}
    assert comparison_kind(hub_subset) == "miniature"
    with pytest.raises(ValueError):
        comparison_kind({"report": {"comparison": "replication"}})
