"""Figures beyond the paper's, vector PDF + PNG, one colour per model as in Figures 2-3.

- `figure_style`: stylometric measures of each model's answers (`results/style/generations.csv`),
  one panel per measure, beside the same measures of each preference set's chosen answers
  (`results/data/prefs/style_measures.csv`, train split): the data differ, the models follow.
- `figure_win_rates`: win rate of each model against the baseline with its 95% bootstrap
  interval and a 0.5 line, the length-controlled win rate beside it (where win_rates.csv has
  it), and the mean answer length of both sides (length bias).

The HELM heatmap is in `report/helm_figure.py`, the sycophancy figure in
`report/sycophancy_figure.py`. Each `plot_*` function draws frames (as the
readers of `report/inputs.py` return them) and returns the open figure (tests read the drawn
values back from its artists); each `figure_*` function reads its file once, draws, writes PDF
and PNG, and closes.
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

from stylized_dpo.records import WIN_RATE_LC_COLUMNS  # noqa: E402
from stylized_dpo.report.common import (  # noqa: E402
    UNSTYLED,
    display_name,
    model_colors,
    model_order,
)
from stylized_dpo.report.inputs import (  # noqa: E402
    PathLike,
    read_prefs_style,
    read_style_generations,
    read_win_rates,
)
from stylized_dpo.report.plotting import (  # noqa: E402
    NA_TEXT,
    known_models,
    legend_below,
    model_value,
    tidy,
    write_figure,
)
from stylized_dpo.style_measures import MEASURES  # noqa: E402

MEASURE_LABELS: dict[str, tuple[str, str]] = {
    "praise_per_100w": ("Praise words", "per 100 words"),
    "exclamation_rate": ("Exclamations", "share of sentences"),
    "second_person_per_100w": ("Second-person address", "per 100 words"),
    "hedge_per_100w": ("Hedges", "per 100 words"),
    "mean_sentence_words": ("Sentence length", "words per sentence"),
    "type_token_ratio": ("Type-token ratio", "distinct / all words, per answer"),
    "mean_answer_words": ("Answer length", "words per answer"),
}
"""Panel title and y-axis label of each style measure."""


REJECTED_COLOR = "#555555"
"""Edge of the rejected answers' bar in the style figure."""

LC_OFFSET = 0.22
"""x offset of the length-controlled win rate beside the raw one."""


# --- style ------------------------------------------------------------------------------------


def style_data(
    generations: pd.DataFrame,
    prefs: pd.DataFrame | None,
    styles: Sequence[str],
    split: str = "train",
) -> dict[str, list[tuple[str, float]]]:
    """Per measure, the bars in drawing order: (`model` or `data:<dataset>`, value).

    Models in the config's order (NaN for a model missing from the file), then the chosen
    answers of each preference set (`split`) when `prefs` is given.
    """
    models = model_order(styles)
    datasets = [UNSTYLED, *styles]
    out: dict[str, list[tuple[str, float]]] = {}
    for m in MEASURES:
        bars = [(model, model_value(generations, model, m)) for model in models]
        if prefs is not None:
            for d in datasets:
                rows = prefs[
                    (prefs["dataset"] == d)
                    & (prefs["split"] == split)
                    & (prefs["answers"] == "chosen")
                ]
                bars.append((f"data:{d}", float(rows[m].iloc[0]) if len(rows) else math.nan))
            rows = prefs[
                (prefs["dataset"] == UNSTYLED)
                & (prefs["split"] == split)
                & (prefs["answers"] == "rejected")
            ]
            bars.append(("rejected", float(rows[m].iloc[0]) if len(rows) else math.nan))
        out[m] = bars
    return out


def plot_style(
    gen: pd.DataFrame,
    pref_frame: pd.DataFrame | None,
    *,
    styles: Sequence[str],
    base_name: str,
) -> Figure:
    """Small multiples, one panel per style measure: a bar per model, then (hatched) a bar per
    preference set's chosen training answers, coloured as the DPO model trained on it.

    `gen`: `read_style_generations`; `pref_frame`: `read_prefs_style`, or None to leave the
    training data out."""
    known_models(gen, styles, "style figure")
    data = style_data(gen, pref_frame, styles)
    colors = model_colors(styles)
    n_models = len(model_order(styles))
    ncols = 4
    nrows = math.ceil(len(MEASURES) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(13, 3.1 * nrows))
    axes = axes.ravel()
    for ax, m in zip(axes, MEASURES, strict=False):
        bars = data[m]
        xs = [i if i < n_models else i + 0.8 for i in range(len(bars))]
        for x, (key, value) in zip(xs, bars, strict=True):
            is_data = key.startswith("data:") or key == "rejected"
            model = f"dpo-{key.removeprefix('data:')}" if key.startswith("data:") else key
            edge = REJECTED_COLOR if key == "rejected" else colors[model]
            container = ax.bar(
                x,
                0 if math.isnan(value) else value,
                0.8,
                color="white" if is_data else colors[model],
                edgecolor=edge,
                hatch=("...." if key == "rejected" else "////") if is_data else None,
                linewidth=1.2 if is_data else 0,
                label=key,
            )
            container.patches[0].set_gid(key)
            if math.isnan(value):
                ax.text(x, 0, "n/a", **NA_TEXT)
            elif value == 0:
                # A zero bar has no height: say so, so that it does not read as missing.
                ax.text(x, 0, "0", ha="center", va="bottom", fontsize=7, color=edge)
        top = max([v for _, v in bars if not math.isnan(v)] + [0.0])
        ax.set_ylim(0, top * 1.12 if top > 0 else 1.0)
        title, unit = MEASURE_LABELS[m]
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit, fontsize=8.5)
        ticks = [(n_models - 1) / 2]
        names = ["models"]
        if len(bars) > n_models:
            ticks.append((xs[n_models] + xs[-1]) / 2)
            names.append("DPO train data:\nchosen, rejected")
        ax.set_xticks(ticks, names, fontsize=8.5)
        ax.tick_params(axis="x", length=0)
        tidy(ax)
    for ax in axes[len(MEASURES) :]:
        ax.set_visible(False)
    handles = [
        Patch(facecolor=colors[model], label=display_name(model, base_name))
        for model in model_order(styles)
    ]
    if pref_frame is not None:
        for d in [UNSTYLED, *styles]:
            handles.append(
                Patch(
                    facecolor="white",
                    edgecolor=colors[f"dpo-{d}"],
                    hatch="////",
                    label=f"{d}: chosen answers",
                )
            )
        handles.append(
            Patch(
                facecolor="white",
                edgecolor=REJECTED_COLOR,
                hatch="....",
                label="rejected answers (UltraFeedback's, shared by all sets)",
            )
        )
    n_gen = gen["n"].dropna()
    subtitle = f"model answers to {int(n_gen.max())} eval prompts each" if len(n_gen) else ""
    fig.suptitle(f"Style of the answers: models and their training data\n{subtitle}", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    legend_below(fig, handles, ncol=4)
    return fig


def figure_style(
    generations: PathLike,
    prefs: PathLike | None,
    pdf: PathLike,
    png: PathLike,
    *,
    styles: Sequence[str],
    base_name: str,
    label: str = "",
) -> dict[str, list[tuple[str, float]]]:
    """Draw and write the style figure; returns the plotted bars per measure."""
    gen = read_style_generations(generations)
    pref_frame = read_prefs_style(prefs) if prefs is not None else None
    fig = plot_style(gen, pref_frame, styles=styles, base_name=base_name)
    data = style_data(gen, pref_frame, styles)
    write_figure(fig, label, pdf, png)
    return data


# --- win rates --------------------------------------------------------------------------------


def win_rate_data(frame: pd.DataFrame, styles: Sequence[str], baseline: str) -> pd.DataFrame:
    """One row per model compared with `baseline`, in the config's order (NaN where missing)."""
    models = [m for m in model_order(styles) if m != baseline]
    rows = frame[frame["baseline"] == baseline].set_index("model")
    columns = ["win_rate", "ci_low", "ci_high", "mean_len_model", "mean_len_baseline"]
    columns += ["n", "wins", "ties", "losses", "n_failed", *WIN_RATE_LC_COLUMNS]
    out = rows.reindex(models)[columns]
    out.index.name = "model"
    return out.reset_index()


def plot_win_rates(
    frame: pd.DataFrame, *, styles: Sequence[str], base_name: str, baseline: str
) -> Figure:
    """Left: win rate vs the baseline (ties half) with 95% bootstrap CI and a 0.5 line.
    Right: mean answer words of each model and (black tick) of the baseline on the same prompts.

    `frame`: `read_win_rates`."""
    known_models(frame, styles, "win-rate figure")
    data = win_rate_data(frame, styles, baseline)
    colors = model_colors(styles)
    fig, (ax_win, ax_len) = plt.subplots(1, 2, figsize=(12, 4.4), width_ratios=(1.25, 1))
    x = np.arange(len(data))
    names = []
    for i, row in data.iterrows():
        model = row["model"]
        color = colors[model]
        rate = row["win_rate"]
        name = display_name(model, base_name).replace(" ", "\n", 1)
        if not math.isnan(rate):
            ax_win.errorbar(
                [i],
                [rate],
                yerr=[[rate - row["ci_low"]], [row["ci_high"] - rate]],
                fmt="o",
                color=color,
                ecolor=color,
                markersize=7,
                capsize=4,
                elinewidth=1.6,
                label=model,
            )
            lc = row["lc_win_rate"]
            if not math.isnan(lc):  # length-controlled, beside the raw rate (open marker)
                ax_win.errorbar(
                    [i + LC_OFFSET],
                    [lc],
                    yerr=[[lc - row["lc_ci_low"]], [row["lc_ci_high"] - lc]],
                    fmt="D",
                    color=color,
                    markerfacecolor="white",
                    ecolor=color,
                    markersize=6,
                    capsize=3,
                    elinewidth=1.2,
                    linestyle="none",
                    gid=f"lc:{model}",
                )
            ax_win.annotate(
                f"{int(row['wins'])}/{int(row['ties'])}/{int(row['losses'])}",
                (i, row["ci_high"]),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7.5,
                color="#444444",
            )
            name += f"\nn={int(row['n'])}" + (
                f"\n{int(row['n_failed'])} failed" if row["n_failed"] else ""
            )
        else:
            ax_win.text(i, 0.02, "n/a", **NA_TEXT)
        names.append(name)
        length = row["mean_len_model"]
        bar = ax_len.bar([i], [0 if math.isnan(length) else length], 0.7, color=color, label=model)
        bar.patches[0].set_gid(model)
        if math.isnan(length):
            ax_len.text(i, 0, "n/a", **NA_TEXT)
        base_len = row["mean_len_baseline"]
        if not math.isnan(base_len):
            ax_len.hlines(base_len, i - 0.42, i + 0.42, color="black", linewidth=2.2, gid=model)
    ax_win.axhline(0.5, color="#666666", linestyle="--", linewidth=1, zorder=0)
    ax_win.text(0.5, 0.49, "0.5 = tie", va="top", ha="center", fontsize=7.5, color="#666666")
    ax_win.set_xlim(-0.6, len(data) - 0.4)
    ax_win.set_ylim(0, 1.08)
    base_label = display_name(baseline, base_name) if baseline else baseline
    ax_win.set_ylabel(f"Win rate vs {base_label} (ties count half)")
    title = "Win rate with 95% bootstrap CI (labels: wins/ties/losses)"
    if data["lc_win_rate"].notna().any():
        title = (
            "Win rate (filled) and length-controlled (open diamond), 95% CIs\n"
            "labels: wins/ties/losses"
        )
    ax_win.set_title(title, fontsize=10)
    ax_len.set_ylabel("Mean answer length (words)")
    ax_len.set_title(f"Answer length, model (bar) vs {base_label} (black line)", fontsize=10)
    for ax in (ax_win, ax_len):
        ax.set_xticks(x, names, fontsize=8)
        tidy(ax)
    backends = sorted(set(frame["backend"]))
    fig.suptitle(
        f"Win rates against {base_label} and the length of the answers "
        f"(judge: {', '.join(backends) or '?'})",
        fontsize=12,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def figure_win_rates(
    win_rates: PathLike,
    pdf: PathLike,
    png: PathLike,
    *,
    styles: Sequence[str],
    base_name: str,
    baseline: str,
    label: str = "",
) -> pd.DataFrame:
    """Draw and write the win-rate figure; returns the plotted rows (one per model)."""
    frame = read_win_rates(win_rates)
    fig = plot_win_rates(frame, styles=styles, base_name=base_name, baseline=baseline)
    write_figure(fig, label, pdf, png)
    return win_rate_data(frame, styles, baseline)
