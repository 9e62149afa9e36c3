"""Figures beyond the paper's (issue 6), vector PDF + PNG, one colour per model as in Figures 2-3.

- `figure_style`: stylometric measures of each model's answers (`results/style/generations.csv`),
  one panel per measure, beside the same measures of each preference set's chosen answers
  (`results/data/prefs/style_measures.csv`, train split): the data differ, the models follow.
- `figure_win_rates`: win rate of each model against the baseline with its 95% bootstrap
  interval and a 0.5 line, the length-controlled win rate beside it (where win_rates.csv has
  it), and the mean answer length of both sides (length bias).
- `figure_helm`: every HELM family and scenario as a heatmap; colour is a cell's position within
  its column (best = darkest), with ECE reversed so the colour reads the same way; values printed,
  with their 95% bootstrap interval under them where summary.csv has one.
- `figure_sycophancy`: accuracy before and after a user's push-back, and the flip rate with its
  interval (`results/sycophancy/summary.csv`).

Each `plot_*` function returns the open figure (tests read the drawn values back from its
artists); each `figure_*` function draws, writes PDF and PNG, and closes.
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

from stylized_dpo.io import DataError  # noqa: E402
from stylized_dpo.records import (  # noqa: E402
    HELM_FAMILIES,
    SYCOPHANCY_SUMMARY_COLUMNS,
    WIN_RATE_LC_COLUMNS,
)
from stylized_dpo.report.common import (  # noqa: E402
    SCENARIO_NAMES,
    UNSTYLED,
    display_name,
    model_colors,
    model_order,
)
from stylized_dpo.report.figures import label_below, save_figure  # noqa: E402
from stylized_dpo.report.inputs import (  # noqa: E402
    PathLike,
    _csv_float,
    _read_csv,
    read_helm_summary,
    read_win_rates,
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

NA_TEXT = dict(ha="center", va="bottom", fontsize=7, color="#555555", rotation=90)


def _numeric_table(
    path: PathLike, key_columns: Sequence[str], value_columns: Sequence[str]
) -> pd.DataFrame:
    """A CSV with string keys and float values (NaN where empty), keys unique, plus `line`."""
    frame = _read_csv(path, [*key_columns, *value_columns])
    out = []
    seen: dict[tuple[str, ...], int] = {}
    for i, row in frame.iterrows():
        line = int(i) + 2  # header is line 1
        key = tuple(row[c].strip() for c in key_columns)
        if not key[0]:
            raise DataError(path, line, key_columns[0], "is empty")
        if key in seen:
            raise DataError(path, line, key_columns[-1], f"{key} repeats line {seen[key]}")
        seen[key] = line
        record: dict[str, object] = {"line": line, **dict(zip(key_columns, key, strict=True))}
        for c in value_columns:
            record[c] = _csv_float(path, line, c, row[c], optional=True)
        out.append(record)
    return pd.DataFrame(out, columns=["line", *key_columns, *value_columns])


def read_style_generations(path: PathLike) -> pd.DataFrame:
    """results/style/generations.csv: one row per model, measures as floats."""
    return _numeric_table(path, ["model"], ["n", *MEASURES])


def read_prefs_style(path: PathLike) -> pd.DataFrame:
    """results/data/prefs/style_measures.csv: one row per (dataset, split, answers)."""
    return _numeric_table(path, ["dataset", "split", "answers"], ["n", *MEASURES])


def read_sycophancy_summary(path: PathLike) -> pd.DataFrame:
    """results/sycophancy/summary.csv: one row per model, numbers as floats."""
    return _numeric_table(path, ["model"], list(SYCOPHANCY_SUMMARY_COLUMNS[1:]))


def _known_models(frame: pd.DataFrame, styles: Sequence[str], what: str) -> list[str]:
    """The config's models in order; reports models in the file that the config does not list."""
    models = model_order(styles)
    extra = sorted(set(frame["model"]) - set(models))
    if extra:
        print(f"{what}: left out {len(extra)} model(s) not in the config: {', '.join(extra)}")
    return models


def _value(frame: pd.DataFrame, model: str, column: str) -> float:
    rows = frame[frame["model"] == model]
    return float(rows[column].iloc[0]) if len(rows) else math.nan


def _tidy(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _legend_below(fig: Figure, handles: list, ncol: int) -> None:
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=ncol,
        bbox_to_anchor=(0.5, 0.0),
        frameon=False,
        fontsize=9,
    )


class _AxesBottom:
    """The lowest edge of a figure's axes (tick labels included), for `label_below`."""

    def __init__(self, fig: Figure) -> None:
        self.fig = fig

    def get_window_extent(self, renderer=None):
        from matplotlib.transforms import Bbox

        boxes = [ax.get_tightbbox() for ax in self.fig.axes if ax.get_visible()]
        return Bbox.union([b for b in boxes if b is not None])


def _write(fig: Figure, label: str, pdf: PathLike, png: PathLike) -> None:
    """Run label under the legend (or under the axes when there is none); PDF + PNG; close."""
    anchor = fig.legends[-1] if fig.legends else _AxesBottom(fig)
    label_below(fig, anchor, label)  # type: ignore[arg-type]
    save_figure(fig, pdf, png)
    plt.close(fig)


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
        bars = [(model, _value(generations, model, m)) for model in models]
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
    generations: PathLike,
    prefs: PathLike | None,
    *,
    styles: Sequence[str],
    base_name: str,
) -> Figure:
    """Small multiples, one panel per style measure: a bar per model, then (hatched) a bar per
    preference set's chosen training answers, coloured as the DPO model trained on it."""
    gen = read_style_generations(generations)
    _known_models(gen, styles, "style figure")
    pref_frame = read_prefs_style(prefs) if prefs is not None else None
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
        _tidy(ax)
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
    _legend_below(fig, handles, ncol=4)
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
    fig = plot_style(generations, prefs, styles=styles, base_name=base_name)
    data = style_data(
        read_style_generations(generations),
        read_prefs_style(prefs) if prefs is not None else None,
        styles,
    )
    _write(fig, label, pdf, png)
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
    win_rates: PathLike, *, styles: Sequence[str], base_name: str, baseline: str
) -> Figure:
    """Left: win rate vs the baseline (ties half) with 95% bootstrap CI and a 0.5 line.
    Right: mean answer words of each model and (black tick) of the baseline on the same prompts."""
    frame = read_win_rates(win_rates)
    _known_models(frame, styles, "win-rate figure")
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
        _tidy(ax)
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
    fig = plot_win_rates(win_rates, styles=styles, base_name=base_name, baseline=baseline)
    _write(fig, label, pdf, png)
    return win_rate_data(read_win_rates(win_rates), styles, baseline)


# --- HELM -------------------------------------------------------------------------------------


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
    summary: PathLike,
    *,
    styles: Sequence[str],
    base_name: str,
    scenarios: Sequence[str],
) -> Figure:
    """Heatmap of models x (family, scenario); values printed, colour = position in column."""
    frame = read_helm_summary(summary)
    _known_models(frame, styles, "HELM figure")
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
    for i in range(len(models)):
        for j in range(len(columns)):
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
        _legend_below(fig, handles, ncol=2)
    return fig


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
    fig = plot_helm(summary, styles=styles, base_name=base_name, scenarios=scenarios)
    _write(fig, label, pdf, png)
    return helm_matrix(read_helm_summary(summary), styles, scenarios)[2]


# --- sycophancy -------------------------------------------------------------------------------


def sycophancy_data(frame: pd.DataFrame, styles: Sequence[str]) -> pd.DataFrame:
    """One row per model in the config's order (NaN where the file has none)."""
    models = model_order(styles)
    out = frame.set_index("model").reindex(models)[list(SYCOPHANCY_SUMMARY_COLUMNS[1:])]
    out.index.name = "model"
    return out.reset_index()


def plot_sycophancy(summary: PathLike, *, styles: Sequence[str], base_name: str) -> Figure:
    """Left: accuracy before (open circle) and after (filled) the push-back, joined by an arrow.
    Right: flip rate (share of items whose parsed first answer is not repeated) with its 95%
    bootstrap interval. Definitions: `stylized_dpo.evals.sycophancy`."""
    frame = read_sycophancy_summary(summary)
    _known_models(frame, styles, "sycophancy figure")
    data = sycophancy_data(frame, styles)
    colors = model_colors(styles)
    fig, (ax_acc, ax_flip) = plt.subplots(1, 2, figsize=(14, 4.4))
    names = []
    for i, row in data.iterrows():
        model = row["model"]
        color = colors[model]
        name = display_name(model, base_name).replace(" ", "\n", 1)
        before, after = row["accuracy_before"], row["accuracy_after"]
        if not (math.isnan(before) or math.isnan(after)):
            ax_acc.annotate(
                "",
                (i, after),
                (i, before),
                arrowprops=dict(arrowstyle="-|>", color=color, linewidth=1.6, shrinkA=4, shrinkB=4),
            )
        ax_acc.plot(
            [i],
            [before],
            "o",
            markerfacecolor="none",
            markeredgecolor=color,
            markeredgewidth=1.8,
            markersize=11,
            zorder=3,
            gid=f"before:{model}",
        )
        # Smaller and below the ring: where before == after, a dot inside a ring.
        ax_acc.plot([i], [after], "o", color=color, markersize=6, zorder=2, gid=f"after:{model}")
        if math.isnan(before) and math.isnan(after):
            ax_acc.text(i, 0.02, "n/a", **NA_TEXT)
        flip = row["flip_rate"]
        if math.isnan(flip):
            ax_flip.text(i, 0.005, "n/a", **NA_TEXT)
            bar = ax_flip.bar([i], [0], 0.7, color=color)
        else:
            lo, hi = row["flip_rate_ci_low"], row["flip_rate_ci_high"]
            err = None
            if not (math.isnan(lo) or math.isnan(hi)):
                err = [[flip - lo], [hi - flip]]
            bar = ax_flip.bar(
                [i],
                [flip],
                0.7,
                color=color,
                yerr=err,
                capsize=4,
                error_kw=dict(ecolor="#222222", elinewidth=1.1),
            )
        bar.patches[0].set_gid(model)
        if flip == 0:
            ax_flip.text(i, 0, "0", ha="center", va="bottom", fontsize=7.5, color=color)
        if not math.isnan(row["n"]):
            name += f"\nn={int(row['n'])}"
            name += (
                f"\nunparsed {int(row['n_unparsed'])}/{2 * int(row['n'])}"
                if row["n_unparsed"]
                else ""
            )
        names.append(name)
    ax_acc.set_ylabel("Accuracy on the questions")
    ax_acc.set_title("Accuracy before (open) and after (filled) the push-back", fontsize=10)
    ax_acc.set_ylim(-0.03, 1.05)
    ax_flip.set_ylabel("Flip rate (share of items, answer changed)")
    ax_flip.set_title("Flip rate after the push-back, with 95% CI", fontsize=10)
    ax_flip.set_ylim(bottom=0)
    for ax in (ax_acc, ax_flip):
        ax.set_xticks(range(len(data)), names, fontsize=8)
        ax.set_xlim(-0.6, len(data) - 0.4)
        _tidy(ax)
    fig.suptitle(
        "Sycophancy: do the models change their answer when the user pushes back?", fontsize=12
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def figure_sycophancy(
    summary: PathLike,
    pdf: PathLike,
    png: PathLike,
    *,
    styles: Sequence[str],
    base_name: str,
    label: str = "",
) -> pd.DataFrame:
    """Draw and write the sycophancy figure; returns the plotted rows (one per model)."""
    fig = plot_sycophancy(summary, styles=styles, base_name=base_name)
    _write(fig, label, pdf, png)
    return sycophancy_data(read_sycophancy_summary(summary), styles)
