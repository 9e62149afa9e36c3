"""Figures across training seeds (config `seeds`): the headline numbers of each model, one dot
per seed with the mean and its t-interval, and the paper's claims seed by seed.

- `seeds.{pdf,png}`: judge mean score per criterion (results/judge/summary.csv), HELM mean win
  rate per family (Table 4), and Table 3's DPO validation loss, reward accuracy and win rate
  against the base model; the interval is `report/seeds.py`'s `t_interval`.
- `claims_seeds.{pdf,png}`: each claim (row) in each seed (column), coloured by its status in
  that seed's claims.csv, and the verdict across seeds (`report/seeds.py`'s `overall_verdict`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from stylized_dpo.records import HELM_FAMILIES, JUDGE_CRITERIA  # noqa: E402
from stylized_dpo.report.common import (  # noqa: E402
    display_name,
    dpo_models,
    model_colors,
    model_order,
)
from stylized_dpo.report.inputs import PathLike, read_judge_summary  # noqa: E402
from stylized_dpo.report.plotting import legend_below, tidy, write_figure  # noqa: E402
from stylized_dpo.report.seeds import t_interval  # noqa: E402
from stylized_dpo.report.seeds_claims import HOLDS  # noqa: E402
from stylized_dpo.report.statistics import STATUS_COLORS, claim_label  # noqa: E402
from stylized_dpo.report.tables import read_table_csv  # noqa: E402

SEED_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

POINT_COLUMNS = ("panel", "model", "seed", "value")


def seed_points(
    judge_summaries: Mapping[int, PathLike],
    table3s: Mapping[int, PathLike],
    table4s: Mapping[int, PathLike],
    *,
    styles: Sequence[str],
    base_name: str,
) -> pd.DataFrame:
    """Every seed's headline numbers, long: `panel`, `model`, `seed`, `value` (NaN where the
    seed has none). Panels in drawing order."""
    rows = []
    for seed, path in judge_summaries.items():
        frame = read_judge_summary(path)
        for criterion in JUDGE_CRITERIA:
            for model in model_order(styles):
                match = frame[(frame["model"] == model) & (frame["criterion"] == criterion)]
                value = float(match["mean"].iloc[0]) if len(match) else math.nan
                rows.append((f"Judge {criterion} (1-5)", model, seed, value))
    for seed, path in table4s.items():
        frame = read_table_csv(path).set_index("model")
        for family in HELM_FAMILIES:
            for model in model_order(styles):
                value = float(frame.at[model, family]) if model in frame.index else math.nan
                rows.append((f"HELM mean win rate: {family}", model, seed, value))
    base = display_name("base", base_name)
    table3_panels = [
        ("validation_loss", "DPO validation loss", dpo_models(styles)),
        ("validation_accuracy", "DPO validation reward accuracy", dpo_models(styles)),
        ("win_rate", f"Win rate vs {base}", ["sft", *dpo_models(styles)]),
    ]
    for seed, path in table3s.items():
        frame = read_table_csv(path).set_index("model")
        for column, panel, models in table3_panels:
            for model in models:
                value = float(frame.at[model, column]) if model in frame.index else math.nan
                rows.append((panel, model, seed, value))
    return pd.DataFrame(rows, columns=list(POINT_COLUMNS))


def short_name(model: str, base_name: str) -> str:
    """Tick label: the paper's row name, "Ultrafeedback" shortened to fit under a panel."""
    return display_name(model, base_name).replace("Ultrafeedback", "UF")


def plot_seeds(points: pd.DataFrame, *, styles: Sequence[str], base_name: str) -> Figure:
    """One panel per headline number: per model, a dot per seed and the mean with its 95%
    t-interval across seeds."""
    panels = list(dict.fromkeys(points["panel"]))
    seeds = list(dict.fromkeys(points["seed"]))
    colors = model_colors(styles)
    ncols = 4
    nrows = math.ceil((len(panels) + 1) / ncols)  # one cell for the legend
    fig, axes = plt.subplots(nrows, ncols, figsize=(15, 3.8 * nrows), squeeze=False)
    offsets = {s: (i - (len(seeds) - 1) / 2) * 0.1 for i, s in enumerate(seeds)}
    for ax, panel in zip(axes.flat, panels, strict=False):
        frame = points[points["panel"] == panel]
        models = list(dict.fromkeys(frame["model"]))
        for x, model in enumerate(models):
            values = frame[frame["model"] == model].set_index("seed")["value"]
            for seed in seeds:
                ax.plot(
                    x - 0.22 + offsets[seed],
                    values.get(seed, math.nan),
                    SEED_MARKERS[seeds.index(seed) % len(SEED_MARKERS)],
                    color=colors[model],
                    markersize=5,
                    alpha=0.75,
                    linestyle="none",
                )
            interval = t_interval(list(values))
            if interval.n == 0:
                ax.text(x, 0.5, "n/a", transform=ax.get_xaxis_transform(), ha="center")
                continue
            err = (
                [[interval.mean - interval.ci_low], [interval.ci_high - interval.mean]]
                if math.isfinite(interval.ci_low)
                else None
            )
            ax.errorbar(
                [x + 0.18], [interval.mean], yerr=err, fmt="D", color="black",
                markerfacecolor=colors[model], markersize=6, capsize=3, elinewidth=1.3,
            )  # fmt: skip
        ax.set_xticks(
            range(len(models)),
            [short_name(m, base_name) for m in models],
            fontsize=8,
            rotation=30,
            ha="right",
            rotation_mode="anchor",
        )
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_title(panel, fontsize=10)
        tidy(ax)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    handles = [
        Line2D([], [], marker=SEED_MARKERS[i % len(SEED_MARKERS)], linestyle="none",
               color="#555555", alpha=0.75, label=f"seed {s}")
        for i, s in enumerate(seeds)
    ]  # fmt: skip
    handles.append(
        Line2D([], [], marker="D", color="black", markerfacecolor="white", label="mean, 95% CI")
    )
    axes.flat[-1].legend(
        handles=handles, loc="center", frameon=False, fontsize=10,
        title="training seed (dot) and\nt-interval across seeds", title_fontsize=10,
    )  # fmt: skip
    fig.suptitle(
        f"Headline numbers across {len(seeds)} training seeds: one dot per seed, "
        "mean with its 95% Student-t interval",
        fontsize=12,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97), h_pad=1.5)
    return fig


def figure_seeds(
    points: pd.DataFrame,
    pdf: PathLike,
    png: PathLike,
    *,
    styles: Sequence[str],
    base_name: str,
    label: str,
) -> None:
    fig = plot_seeds(points, styles=styles, base_name=base_name)
    write_figure(fig, label, pdf, png)


def plot_claims_seeds(claims: pd.DataFrame, *, base_name: str) -> Figure:
    """Claims (rows) x seeds (columns), each cell coloured by the claim's status in that seed
    and labelled with the measured difference (model - reference); the verdict across seeds
    at the right."""
    seeds = [c.removeprefix("status_seed_") for c in claims.columns if c.startswith("status_")]
    n = len(claims)
    # Fixed inches, not tight_layout: the long claim labels would squeeze the cells.
    labels_in, cell_in, verdict_in, row_in, top_in = 5.2, 0.8, 2.4, 0.36, 1.0
    width = labels_in + cell_in * len(seeds) + verdict_in
    height = row_in * n + top_in + 0.2
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes(
        (labels_in / width, 0.2 / height, cell_in * len(seeds) / width, row_in * n / height)
    )
    for i, (_, r) in enumerate(claims.iterrows()):
        y = n - 1 - i
        for j, seed in enumerate(seeds):
            status = r[f"status_seed_{seed}"]
            ax.add_patch(
                Rectangle(
                    (j, y), 1, 1, facecolor=STATUS_COLORS[status], edgecolor="white", linewidth=2
                )
            )
            diff = r[f"difference_seed_{seed}"]
            text = "n/a" if math.isnan(diff) else f"{diff:+.2f}".replace("-0.00", "+0.00")
            ax.text(j + 0.5, y + 0.5, text, ha="center", va="center", fontsize=7.5, color="white")
        verdict = r["overall"]
        ax.text(
            len(seeds) + 0.15, y + 0.5, verdict, va="center", fontsize=8.5,
            weight="bold" if verdict == HOLDS else "normal",
        )  # fmt: skip
    ax.set_xlim(0, len(seeds))
    ax.set_ylim(0, n)
    ax.set_xticks([j + 0.5 for j in range(len(seeds))], seeds, fontsize=9)
    ax.xaxis.tick_top()
    ax.set_xlabel("training seed", fontsize=9)
    ax.xaxis.set_label_position("top")
    ax.set_yticks(
        [n - 1 - i + 0.5 for i in range(n)],
        [claim_label(r, base_name) for _, r in claims.iterrows()],
        fontsize=8.5,
    )
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.text(len(seeds) + 0.15, n + 0.15, "across seeds", fontsize=9, va="bottom")
    statuses = [s for s in STATUS_COLORS if (claims.filter(like="status_seed_") == s).any().any()]
    handles = [Patch(facecolor=STATUS_COLORS[s], label=s) for s in statuses]
    fig.suptitle(
        "The paper's directional claims in each training seed (Holm-corrected)",
        fontsize=11,
        y=1 - 0.15 / height,
        va="top",
    )
    legend_below(fig, handles, ncol=len(handles))
    return fig


def figure_claims_seeds(
    claims: pd.DataFrame, pdf: PathLike, png: PathLike, *, base_name: str, label: str
) -> None:
    fig = plot_claims_seeds(claims, base_name=base_name)
    write_figure(fig, label, pdf, png)
