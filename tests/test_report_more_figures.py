"""The figures beyond the paper's (style, win rates, HELM heatmap, sycophancy): written as PDF
and PNG, non-empty, and the values drawn (read back from the figures' artists) are the input
files'."""

from __future__ import annotations

import math

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from report_fixtures import (
    MISSING_NOTE,
    MODELS,
    SCENARIOS,
    STYLES,
    make_results,
    make_style_results,
    make_sycophancy_summary,
)

from stylized_dpo.io import DataError
from stylized_dpo.report import helm_figure as hf
from stylized_dpo.report import more_figures as mf
from stylized_dpo.report import sycophancy_figure as sf
from stylized_dpo.report.inputs import (
    read_helm_summary,
    read_prefs_style,
    read_style_generations,
    read_sycophancy_summary,
    read_win_rates,
)
from stylized_dpo.style_measures import MEASURES

BASE = "Qwen 2.5 0.5B"


@pytest.fixture
def root(tmp_path):
    make_results(tmp_path / "results")
    return tmp_path / "results"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def check_image(pdf, png):
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5000
    image = matplotlib.image.imread(png)
    height, width = image.shape[:2]
    assert width >= 1200 and height >= 600
    assert len({tuple(px) for px in image[::7, ::7].reshape(-1, image.shape[2]).tolist()}) > 20


def heights(ax) -> dict[str, float]:
    return {p.get_gid(): p.get_height() for p in ax.patches if p.get_gid()}


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


# --- style ------------------------------------------------------------------------------------


def test_style_figure_draws_the_files_values(tmp_path):
    truth = make_style_results(tmp_path / "results")
    gen = tmp_path / "results" / "style" / "generations.csv"
    prefs = tmp_path / "results" / "data" / "prefs" / "style_measures.csv"
    fig = mf.plot_style(
        read_style_generations(gen), read_prefs_style(prefs), styles=STYLES, base_name=BASE
    )
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == len(MEASURES)
    for ax, measure in zip(axes, MEASURES, strict=True):
        drawn = heights(ax)
        for model in MODELS:
            value = truth["generations"][model][measure]
            expected = 0.0 if value == "" else value
            assert drawn[model] == pytest.approx(expected), (measure, model)
        for dataset in ["ultrafeedback", *STYLES]:
            expected = truth["prefs"][(dataset, "train", "chosen")][measure]
            assert drawn[f"data:{dataset}"] == pytest.approx(expected), (measure, dataset)
        rejected = truth["prefs"][("ultrafeedback", "train", "rejected")][measure]
        assert drawn["rejected"] == pytest.approx(rejected)
        assert ax.get_ylim()[0] == 0
    # The empty cell (exclamations of dpo-authoritative) is marked, the zero hedges are labelled.
    assert "n/a" in texts(axes[MEASURES.index("exclamation_rate")])
    assert texts(axes[MEASURES.index("hedge_per_100w")]).count("0") == len(MODELS)


def test_style_figure_writes_files_and_works_without_the_prefs_table(tmp_path):
    make_style_results(tmp_path / "results")
    gen = tmp_path / "results" / "style" / "generations.csv"
    pdf, png = tmp_path / "s.pdf", tmp_path / "s.png"
    data = mf.figure_style(gen, None, pdf, png, styles=STYLES, base_name=BASE, label="a mini")
    check_image(pdf, png)
    assert [k for k, _ in data["praise_per_100w"]] == MODELS


def test_style_figure_names_file_line_and_field(tmp_path):
    make_style_results(tmp_path / "results")
    gen = tmp_path / "results" / "style" / "generations.csv"
    frame = pd.read_csv(gen, dtype=str, keep_default_na=False)
    frame.loc[2, "praise_per_100w"] = "lots"
    frame.to_csv(gen, index=False)
    with pytest.raises(DataError, match=r"generations.csv.*line 4.*praise_per_100w"):
        mf.plot_style(read_style_generations(gen), None, styles=STYLES, base_name=BASE)


# --- win rates --------------------------------------------------------------------------------


def test_win_rate_figure_draws_the_files_values(root, tmp_path):
    path = root / "judge" / "win_rates.csv"
    frame = pd.read_csv(path)
    frame = frame[frame["baseline"] == "base"].set_index("model")
    fig = mf.plot_win_rates(read_win_rates(path), styles=STYLES, base_name=BASE, baseline="base")
    ax_win, ax_len = fig.axes
    bars = {c.get_label(): c for c in ax_win.containers}
    assert sorted(bars) == sorted(MODELS[1:])  # the baseline is not compared with itself
    for model, row in frame.iterrows():
        container = bars[model]
        assert container.lines[0].get_ydata()[0] == pytest.approx(row["win_rate"])
        caps = sorted(y for cap in container.lines[1] for y in cap.get_ydata())
        assert caps == pytest.approx([row["ci_low"], row["ci_high"]])
        assert heights(ax_len)[model] == pytest.approx(row["mean_len_model"])
        (baseline_line,) = [c for c in ax_len.collections if c.get_gid() == model]
        assert isinstance(baseline_line, LineCollection)
        assert baseline_line.get_segments()[0][0][1] == pytest.approx(row["mean_len_baseline"])
        assert f"{row['wins']}/{row['ties']}/{row['losses']}" in texts(ax_win)
    # The 0.5 reference line.
    assert any(list(line.get_ydata()) == [0.5, 0.5] for line in ax_win.get_lines())
    pdf, png = tmp_path / "w.pdf", tmp_path / "w.png"
    data = mf.figure_win_rates(path, pdf, png, styles=STYLES, base_name=BASE, baseline="base")
    check_image(pdf, png)
    assert list(data["model"]) == MODELS[1:]


def test_win_rate_figure_marks_a_missing_model(root):
    path = root / "judge" / "win_rates.csv"
    frame = pd.read_csv(path)
    frame[frame["model"] != "dpo-sycophantic"].to_csv(path, index=False)
    fig = mf.plot_win_rates(read_win_rates(path), styles=STYLES, base_name=BASE, baseline="base")
    ax_win, ax_len = fig.axes
    assert "dpo-sycophantic" not in {c.get_label() for c in ax_win.containers}
    assert "n/a" in texts(ax_win) and "n/a" in texts(ax_len)


# --- HELM -------------------------------------------------------------------------------------


def test_helm_heatmap_values_missing_cells_and_direction(tmp_path):
    truth = make_results(tmp_path / "results")["helm"]
    path = tmp_path / "results" / "helm" / "summary.csv"
    fig = hf.plot_helm(read_helm_summary(path), styles=STYLES, base_name=BASE, scenarios=SCENARIOS)
    ax = fig.axes[0]
    models, columns, values = hf.helm_matrix(read_helm_summary(path), STYLES, SCENARIOS)
    assert models == MODELS and len(columns) == 4 * (1 + len(SCENARIOS))
    cell_text = {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid()}
    n_missing = 0
    for i, model in enumerate(models):
        for j, (family, scenario) in enumerate(columns):
            expected = truth[(model, family, scenario)]
            if expected is None:
                n_missing += 1
                assert math.isnan(values[i, j]) and cell_text[f"{i},{j}"] == "n/a"
            else:
                assert values[i, j] == expected
                assert cell_text[f"{i},{j}"] == f"{expected:.2f}"
    assert n_missing == len(MODELS)  # HellaSwag ECE, as the fixture's note says
    assert MISSING_NOTE
    # Colour: best in column = 1, and for ECE the lowest value is the best.
    (image,) = [im for im in ax.images if im.get_gid() == "helm-scale"]
    scale = np.ma.filled(image.get_array(), np.nan)
    for j, (family, scenario) in enumerate(columns):
        col = values[:, j]
        if np.isnan(col).all():
            assert np.isnan(scale[:, j]).all()
            continue
        best = np.nanargmin(col) if hf.lower_is_better(family, scenario) else np.nanargmax(col)
        assert scale[best, j] == 1.0
    assert hf.lower_is_better("calibration", "mmlu")
    assert not hf.lower_is_better("calibration", "mean_win_rate")
    assert not hf.lower_is_better("accuracy", "mmlu")


def test_helm_tied_column_is_grey_not_coloured():
    values = np.array([[0.0, 0.2], [0.0, 0.4], [np.nan, 0.3]])
    scale = hf.helm_colour_scale(values, [("accuracy", "mmlu"), ("calibration", "boolq")])
    assert list(scale[:2, 0]) == [-1.0, -1.0] and np.isnan(scale[2, 0])
    assert list(scale[:, 1]) == pytest.approx([1.0, 0.0, 0.5])  # ECE: 0.2 best, 0.4 worst


def test_helm_figure_writes_files(root, tmp_path):
    pdf, png = tmp_path / "h.pdf", tmp_path / "h.png"
    hf.figure_helm(
        root / "helm" / "summary.csv",
        pdf,
        png,
        styles=STYLES,
        base_name=BASE,
        scenarios=SCENARIOS,
        label="a miniature",
    )
    check_image(pdf, png)


# --- sycophancy -------------------------------------------------------------------------------


def test_sycophancy_figure_draws_the_files_values(tmp_path):
    path = tmp_path / "sycophancy" / "summary.csv"
    rows = make_sycophancy_summary(path)
    fig = sf.plot_sycophancy(read_sycophancy_summary(path), styles=STYLES, base_name=BASE)
    ax_acc, ax_flip = fig.axes
    points = {line.get_gid(): line.get_ydata()[0] for line in ax_acc.get_lines()}
    flips = heights(ax_flip)
    for model, (_, _, before, after, flip, *_) in rows.items():
        assert points[f"before:{model}"] == pytest.approx(before)
        assert points[f"after:{model}"] == pytest.approx(after)
        assert flips[model] == pytest.approx(flip)
    assert math.isnan(points["before:dpo-persuasive"]) and flips["dpo-persuasive"] == 0
    assert "n/a" in texts(ax_acc) and "n/a" in texts(ax_flip)
    # The error bars span each model's interval.
    spans = sorted(
        (round(seg[0][1], 6), round(seg[1][1], 6))
        for c in ax_flip.collections
        for seg in c.get_segments()
    )
    expected = sorted((round(r[5], 6), round(r[6], 6)) for r in rows.values())
    assert spans == expected


def test_sycophancy_figure_writes_files_and_checks_columns(tmp_path):
    path = tmp_path / "sycophancy" / "summary.csv"
    make_sycophancy_summary(path)
    pdf, png = tmp_path / "y.pdf", tmp_path / "y.png"
    data = sf.figure_sycophancy(path, pdf, png, styles=STYLES, base_name=BASE, label="a mini")
    check_image(pdf, png)
    assert list(data["model"]) == MODELS
    frame = pd.read_csv(path).drop(columns=["flip_rate"])
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="flip_rate"):
        sf.plot_sycophancy(read_sycophancy_summary(path), styles=STYLES, base_name=BASE)
