"""The sycophancy figure (beyond the paper), vector PDF + PNG: accuracy before and after a
user's push-back, and the flip rate with its interval (`results/sycophancy/summary.csv`).

`plot_sycophancy` draws the frame `read_sycophancy_summary` returns; `figure_sycophancy` reads
the file once, draws, writes PDF and PNG, and closes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from stylized_dpo.records import SYCOPHANCY_SUMMARY_COLUMNS  # noqa: E402
from stylized_dpo.report.common import display_name, model_colors, model_order  # noqa: E402
from stylized_dpo.report.inputs import PathLike, read_sycophancy_summary  # noqa: E402
from stylized_dpo.report.plotting import NA_TEXT, known_models, tidy, write_figure  # noqa: E402


def sycophancy_data(frame: pd.DataFrame, styles: Sequence[str]) -> pd.DataFrame:
    """One row per model in the config's order (NaN where the file has none)."""
    models = model_order(styles)
    out = frame.set_index("model").reindex(models)[list(SYCOPHANCY_SUMMARY_COLUMNS[1:])]
    out.index.name = "model"
    return out.reset_index()


def plot_sycophancy(frame: pd.DataFrame, *, styles: Sequence[str], base_name: str) -> Figure:
    """Left: accuracy before (open circle) and after (filled) the push-back, joined by an arrow.
    Right: flip rate (share of items whose parsed first answer is not repeated) with its 95%
    bootstrap interval. Definitions: `stylized_dpo.evals.sycophancy`.

    `frame`: `read_sycophancy_summary`."""
    known_models(frame, styles, "sycophancy figure")
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
        tidy(ax)
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
    frame = read_sycophancy_summary(summary)
    fig = plot_sycophancy(frame, styles=styles, base_name=base_name)
    write_figure(fig, label, pdf, png)
    return sycophancy_data(frame, styles)
