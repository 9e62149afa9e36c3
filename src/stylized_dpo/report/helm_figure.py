"""The HELM heatmap (beyond the paper), vector PDF + PNG: every HELM family and scenario of
every model; colour is a cell's position within its column (best = darkest), with ECE reversed
so the colour reads the same way; values printed, with their 95% bootstrap interval under them
where summary.csv has one.

`plot_helm` draws the frame `read_helm_summary` returns; `figure_helm` reads the file once,
draws, writes PDF and PNG, and closes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from stylized_dpo.records import HELM_FAMILIES  # noqa: E402
from stylized_dpo.report.common import SCENARIO_NAMES, display_name, model_order  # noqa: E402
from stylized_dpo.report.inputs import PathLike, read_helm_summary  # noqa: E402
from stylized_dpo.report.plotting import known_models, legend_below, write_figure  # noqa: E402


def lower_is_better(family: str, scenario: str) -> bool:
    """ECE (the calibration family's per-scenario value) is better when lower; win rates and
    accuracies are better when higher."""
    return family == "calibration" and scenario != "mean_win_rate"


def helm_matrix(
    frame: pd.DataFrame, styles: Sequence[str], scenarios: Sequence[str]
) -> tuple[list[str], list[tuple[str, str]], np.ndarray]:
    """(models, columns as (family, scenario), values [model x column], NaN where missing).

    Columns: per family, the mean win rate then each scenario in config order; families in
    HELM's order. Models and columns the file has none of at all are still drawn (as missing).
    """
    models = model_order(styles)
    columns = [(f, s) for f in HELM_FAMILIES for s in ["mean_win_rate", *scenarios]]
    index = {(r.model, r.family, r.scenario): r.value for r in frame.itertuples()}
    values = np.array(
        [[index.get((m, f, s), math.nan) for f, s in columns] for m in models], dtype=float
    )
    return models, columns, values


def helm_interval_matrix(
    frame: pd.DataFrame, models: Sequence[str], columns: Sequence[tuple[str, str]]
) -> tuple[np.ndarray, np.ndarray]:
    """(ci_low, ci_high) [model x column] from summary.csv's interval columns (NaN: none)."""
    index = {(r.model, r.family, r.scenario): (r.ci_low, r.ci_high) for r in frame.itertuples()}
    empty = (math.nan, math.nan)
    pairs = [[index.get((m, f, s), empty) for f, s in columns] for m in models]
    both = np.array(pairs, dtype=float).reshape(len(models), len(columns), 2)
    return both[:, :, 0], both[:, :, 1]


def helm_colour_scale(values: np.ndarray, columns: Sequence[tuple[str, str]]) -> np.ndarray:
    """Each cell's position in its column, 0 = worst model, 1 = best (ECE reversed).

    NaN for a missing cell; -1 for a column where all present models tie (no ranking).
    """
    out = np.full(values.shape, math.nan)
    for j, (family, scenario) in enumerate(columns):
        col = values[:, j]
        present = ~np.isnan(col)
        if not present.any():
            continue
        lo, hi = col[present].min(), col[present].max()
        if hi == lo:
            out[present, j] = -1.0
            continue
        pos = (col[present] - lo) / (hi - lo)
        out[present, j] = 1 - pos if lower_is_better(family, scenario) else pos
    return out


def plot_helm(
    frame: pd.DataFrame,
    *,
    styles: Sequence[str],
    base_name: str,
    scenarios: Sequence[str],
) -> Figure:
    """Heatmap of models x (family, scenario); values printed, colour = position in column.

    `frame`: `read_helm_summary`."""
    known_models(frame, styles, "HELM figure")
    models, columns, values = helm_matrix(frame, styles, scenarios)
    scale = helm_colour_scale(values, columns)
    lows, highs = helm_interval_matrix(frame, models, columns)
    with_ci = bool(np.isfinite(lows).any())
    width, height = (0.86, 0.8) if with_ci else (0.62, 0.55)
    fig, ax = plt.subplots(
        figsize=(max(10.0, width * len(columns) + 2.5), height * len(models) + 2.6)
    )
    cmap = plt.get_cmap("YlGnBu")
    shown = np.ma.masked_invalid(np.where(scale < 0, np.nan, scale))
    image = ax.imshow(shown, cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    image.set_gid("helm-scale")
    _draw_cells(ax, values, scale, lows, highs, with_ci)
    _label_axes(ax, models, columns, scenarios, base_name, with_ci)
    bar = fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    bar.set_ticks([0, 1], labels=["worst\nin column", "best\nin column"], fontsize=8)
    bar.set_label(
        "Colour: position within the column\n(ECE: lower is better, so reversed)", fontsize=8
    )
    fig.suptitle(
        "HELM: accuracy, calibration, robustness and fairness of every model", fontsize=12, y=0.995
    )
    handles = []
    if np.isnan(values).any():
        handles.append(
            Patch(facecolor="white", hatch="xxx", edgecolor="#bbbbbb", label="n/a: no value")
        )
    if (scale < 0).any():
        handles.append(Patch(facecolor="#e4e4e4", label="all models tie in this column"))
    fig.tight_layout()
    if handles:
        legend_below(fig, handles, ncol=2)
    return fig


def _draw_cells(
    ax, values: np.ndarray, scale: np.ndarray, lows: np.ndarray, highs: np.ndarray, with_ci: bool
) -> None:
    """Each cell's value (and interval under it); a hatched "n/a" where missing, grey where the
    column ties."""
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            value = values[i, j]
            if math.isnan(value):
                ax.add_patch(
                    plt.Rectangle(
                        (j - 0.5, i - 0.5),
                        1,
                        1,
                        facecolor="white",
                        hatch="xxx",
                        edgecolor="#bbbbbb",
                        linewidth=0,
                    )
                )
                ax.text(
                    j,
                    i,
                    "n/a",
                    ha="center",
                    va="center",
                    fontsize=7.5,
                    color="#333333",
                    bbox=dict(facecolor="white", edgecolor="none", pad=0.5),
                    gid=f"{i},{j}",
                )
                continue
            if scale[i, j] < 0:
                ax.add_patch(
                    plt.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="#e4e4e4", linewidth=0)
                )
            dark = scale[i, j] > 0.6
            has_ci = not math.isnan(lows[i, j])
            ax.text(
                j,
                i - (0.14 if with_ci else 0.0),
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=7.5,
                color="white" if dark else "black",
                gid=f"{i},{j}",
            )
            if has_ci:
                ax.text(
                    j,
                    i + 0.2,
                    f"{lows[i, j]:.2f}–{highs[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=5.6,
                    color="white" if dark else "#333333",
                    gid=f"ci:{i},{j}",
                )


def _label_axes(
    ax,
    models: Sequence[str],
    columns: Sequence[tuple[str, str]],
    scenarios: Sequence[str],
    base_name: str,
    with_ci: bool,
) -> None:
    """Family separators, column and row labels, family names over the columns, axis titles."""
    per_family = 1 + len(scenarios)
    for k in range(1, len(HELM_FAMILIES)):
        ax.axvline(k * per_family - 0.5, color="white", linewidth=4)
    labels = []
    for family, scenario in columns:
        name = (
            "Mean win rate"
            if scenario == "mean_win_rate"
            else SCENARIO_NAMES.get(scenario, scenario)
        )
        labels.append(name + (" (ECE ↓)" if lower_is_better(family, scenario) else ""))
    ax.set_xticks(
        range(len(columns)), labels, rotation=50, ha="right", rotation_mode="anchor", fontsize=8
    )
    ax.set_yticks(range(len(models)), [display_name(m, base_name) for m in models], fontsize=9)
    ax.tick_params(length=0)
    for k, family in enumerate(HELM_FAMILIES):
        ax.text(
            (k + 0.5) * per_family - 0.5,
            -0.75,
            family.capitalize(),
            ha="center",
            va="bottom",
            fontsize=10,
            fontweight="bold",
        )
    ax.set_xlabel(
        "HELM family and scenario (value in each cell"
        + ("; below it, its 95% bootstrap interval over instances)" if with_ci else ")")
    )
    ax.set_ylabel("Model")
    for spine in ax.spines.values():
        spine.set_visible(False)


def figure_helm(
    summary: PathLike,
    pdf: PathLike,
    png: PathLike,
    *,
    styles: Sequence[str],
    base_name: str,
    scenarios: Sequence[str],
    label: str = "",
) -> np.ndarray:
    """Draw and write the HELM heatmap; returns the plotted values (models x columns)."""
    frame = read_helm_summary(summary)
    fig = plot_helm(frame, styles=styles, base_name=base_name, scenarios=scenarios)
    write_figure(fig, label, pdf, png)
    return helm_matrix(frame, styles, scenarios)[2]
