"""The paper's Figures 2 and 3 (vector PDF + PNG), one colour per model across all figures.

- Figure 2: validation loss and validation reward accuracy against training step, one line per
  DPO run (the paper draws the three synthetic sets; we draw plain Ultrafeedback too).
- Figure 3: LLM-judge scores, grouped bars per criterion, one bar per model, ± std error bars.

`plot_figure2` and `plot_figure3` draw what the readers of `report/inputs.py` return; `figure2`
and `figure3` read the files, draw, write PDF and PNG, and close.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from stylized_dpo.records import JUDGE_CRITERIA  # noqa: E402
from stylized_dpo.report.common import (  # noqa: E402
    display_name,
    dpo_models,
    model_colors,
)
from stylized_dpo.report.inputs import (  # noqa: E402
    MetricsRow,
    PathLike,
    eval_rows,
    read_judge_summary,
    read_train_metrics,
)
from stylized_dpo.report.plotting import (  # noqa: E402
    known_models,
    label_below,
    save_figure,
    write_figure,
)


def plot_figure2(
    evals_by_run: Mapping[str, Sequence[MetricsRow]], *, styles: Sequence[str]
) -> Figure:
    """Validation loss and reward accuracy per DPO run, the legend below the axes.

    `evals_by_run` maps `dpo-<dataset>` to its evaluation rows (`eval_rows`). A run without
    evaluation rows is named in the legend as such rather than silently left out.
    """
    colors = model_colors(styles)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4.0))
    handles = []
    for model in dpo_models(styles):
        evals = evals_by_run[model]
        name = display_name(model, "")
        steps = [r.step for r in evals]
        marker = "o" if len(evals) <= 30 else None
        style = dict(color=colors[model], marker=marker, markersize=3.5, linewidth=1.6)
        if not evals:
            name += " (no evaluation rows)"
        (line,) = ax_loss.plot(steps, [r.loss for r in evals], label=name, **style)
        ax_acc.plot(steps, [r.reward_accuracy for r in evals], **style)
        handles.append(line)
    ax_loss.set(title="Validation loss", xlabel="Training step", ylabel="DPO loss (eval split)")
    ax_acc.set(
        title="Validation reward accuracy",
        xlabel="Training step",
        ylabel="Reward accuracy (eval split)",
        ylim=(-0.03, 1.03),
    )
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle("Figure 2: Validation loss and accuracy of the DPO runs", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=min(len(handles), 4),
        bbox_to_anchor=(0.5, 0.0),
        frameon=False,
    )
    return fig


def figure2(
    metrics: Mapping[str, PathLike],
    pdf: PathLike,
    png: PathLike,
    *,
    styles: Sequence[str],
    label: str = "",
) -> dict[str, int]:
    """Figure 2 written as PDF and PNG; returns the number of points per run.

    `metrics` maps `dpo-<dataset>` to its metrics.jsonl.
    """
    evals_by_run = {}
    for model in dpo_models(styles):
        if model not in metrics:
            raise ValueError(f"figure 2: no metrics file given for {model}")
        evals_by_run[model] = eval_rows(read_train_metrics(metrics[model], dpo=True))
    fig = plot_figure2(evals_by_run, styles=styles)
    write_figure(fig, label, pdf, png)
    return {model: len(evals) for model, evals in evals_by_run.items()}


def plot_figure3(
    frame: pd.DataFrame, *, styles: Sequence[str], base_name: str
) -> tuple[Figure, list[str]]:
    """LLM-judge scores per criterion, one bar (mean ± std) per model; returns the figure and
    the models drawn.

    `frame`: `read_judge_summary`. A model without scores is drawn as an "n/a" mark in its slot
    and named so in the legend. Models in the summary that the config does not list are
    reported and left out.
    """
    models = known_models(frame, styles, "figure 3")
    criteria = list(JUDGE_CRITERIA) + sorted(set(frame["criterion"]) - set(JUDGE_CRITERIA))
    colors = model_colors(styles)
    fig, ax = plt.subplots(figsize=(10, 4.6))
    width = 0.8 / len(models)
    x = np.arange(len(criteria))
    drawn = []
    top = 5.0
    for i, model in enumerate(models):
        rows = frame[frame["model"] == model].set_index("criterion")
        means = [rows.at[c, "mean"] if c in rows.index else np.nan for c in criteria]
        stds = [rows.at[c, "std"] if c in rows.index else np.nan for c in criteria]
        pos = x - 0.4 + width * (i + 0.5)
        name = display_name(model, base_name)
        if rows.empty or all(np.isnan(means)):
            name += " (no scores)"
        else:
            n = int(rows["n"].max())
            failed = int(rows["n_failed"].max())
            name += f" (n={n}" + (f", {failed} failed" if failed else "") + ")"
            drawn.append(model)
        ax.bar(
            pos,
            np.nan_to_num(means),
            width,
            color=colors[model],
            label=name,
            edgecolor="white",
            linewidth=0.5,
        )
        bars = ax.errorbar(
            pos,
            means,
            yerr=np.nan_to_num(stds),
            fmt="none",
            ecolor="#222222",
            elinewidth=0.9,
            capsize=2,
        )
        # A white halo keeps the error bar readable over dark bars.
        for artist in (*bars.lines[1], *bars.lines[2]):
            artist.set_path_effects([patheffects.withStroke(linewidth=2.4, foreground="white")])
        for p, m in zip(pos, means, strict=True):
            if np.isnan(m):
                ax.text(p, 0.05, "n/a", rotation=90, ha="center", va="bottom", fontsize=7)
        finite = [
            m + (s if not np.isnan(s) else 0)
            for m, s in zip(means, stds, strict=True)
            if not np.isnan(m)
        ]
        top = max([top, *finite])
    ax.set_xticks(x, [c.capitalize() for c in criteria])
    ax.set(ylabel="Judge score (1-5), mean ± std", ylim=(0, top + 0.25))
    ax.set_yticks(range(0, 6))
    ax.grid(True, axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title("Figure 3: LLM judge scores", fontsize=12)
    fig.tight_layout()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False, fontsize=9)
    return fig, drawn


def figure3(
    summary: PathLike,
    pdf: PathLike,
    png: PathLike,
    *,
    styles: Sequence[str],
    base_name: str,
    label: str = "",
) -> list[str]:
    """Figure 3 written as PDF and PNG; returns the models drawn."""
    fig, drawn = plot_figure3(read_judge_summary(summary), styles=styles, base_name=base_name)
    # The legend belongs to the axes: the run label goes under it.
    label_below(fig, fig.axes[0].get_legend(), label)
    save_figure(fig, pdf, png)
    plt.close(fig)
    return drawn
