"""Figures 2 and 3: written as PDF and PNG, non-empty, drawing what the result files hold."""

from __future__ import annotations

import json

import matplotlib.image
import pandas as pd
import pytest
from report_fixtures import DATASETS, MODELS, STYLES, make_results

from stylized_dpo.report import figures

BASE = "Qwen 2.5 0.5B"


@pytest.fixture
def root(tmp_path):
    make_results(tmp_path / "results")
    return tmp_path / "results"


def check_image(pdf, png, min_width=1200):
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5000
    image = matplotlib.image.imread(png)
    height, width = image.shape[:2]
    assert width >= min_width and height >= 600  # 200 dpi renderings
    # Not blank: many distinct colours.
    assert len({tuple(px) for px in image[::7, ::7].reshape(-1, image.shape[2]).tolist()}) > 20


def dpo_metrics(root):
    return {f"dpo-{d}": root / "train" / f"dpo-{d}" / "metrics.jsonl" for d in DATASETS}


def test_figure2(root, tmp_path):
    pdf, png = tmp_path / "f2.pdf", tmp_path / "f2.png"
    counts = figures.figure2(dpo_metrics(root), pdf, png, styles=STYLES, label="a miniature")
    for dataset in DATASETS:
        path = root / "train" / f"dpo-{dataset}" / "metrics.jsonl"
        n_eval = sum(json.loads(line)["split"] == "eval" for line in path.read_text().splitlines())
        assert counts[f"dpo-{dataset}"] == n_eval
    check_image(pdf, png)


def test_figure2_run_without_eval_rows_is_named(root, tmp_path):
    path = root / "train" / "dpo-persuasive" / "metrics.jsonl"
    path.write_text(json.dumps({"step": 1, "split": "train", "loss": 0.7}) + "\n")
    counts = figures.figure2(
        dpo_metrics(root), tmp_path / "f.pdf", tmp_path / "f.png", styles=STYLES
    )
    assert counts["dpo-persuasive"] == 0
    check_image(tmp_path / "f.pdf", tmp_path / "f.png")


def test_figure3(root, tmp_path):
    pdf, png = tmp_path / "f3.pdf", tmp_path / "f3.png"
    drawn = figures.figure3(
        root / "judge" / "summary.csv", pdf, png, styles=STYLES, base_name=BASE, label="a miniature"
    )
    assert drawn == MODELS
    check_image(pdf, png)


def test_figure3_missing_model_and_extra_model(root, tmp_path, capsys):
    path = root / "judge" / "summary.csv"
    frame = pd.read_csv(path)
    frame = frame[frame["model"] != "dpo-authoritative"]
    extra = frame[frame["model"] == "sft"].assign(model="dpo-old")
    pd.concat([frame, extra]).to_csv(path, index=False)
    drawn = figures.figure3(
        path, tmp_path / "f.pdf", tmp_path / "f.png", styles=STYLES, base_name=BASE
    )
    assert "dpo-authoritative" not in drawn and "dpo-old" not in drawn
    assert "left out 1 model(s) not in the config: dpo-old" in capsys.readouterr().out
    check_image(tmp_path / "f.pdf", tmp_path / "f.png")
