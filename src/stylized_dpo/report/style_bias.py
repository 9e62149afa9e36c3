"""The style-bias audit's table (csv, md, tex) and figure (evals/style_bias.py): does the judge
or the reward model prefer a style set's rewrite of the chosen answer over the original?"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from stylized_dpo.records import JUDGE_CRITERIA  # noqa: E402
from stylized_dpo.report.inputs import PathLike  # noqa: E402
from stylized_dpo.report.plotting import legend_below, write_figure  # noqa: E402
from stylized_dpo.report.statistics import fmt, fmt_p, write_csv, write_plain_table  # noqa: E402


def write_style_bias(
    table: pd.DataFrame, csv: PathLike, md: PathLike, tex: PathLike, *, label: str
) -> None:
    write_csv(table, csv)
    rows = []
    for _, r in table.iterrows():
        rows.append(
            [
                r["style"],
                f"{r['scorer']}: {r['measure']}",
                f"{int(r['n'])}",
                f"{int(r['rewrite_wins'])}/{int(r['ties'])}/{int(r['original_wins'])}",
                f"{fmt(r['win_share'], 2)} [{fmt(r['ci_low'], 2)}, {fmt(r['ci_high'], 2)}]",
                f"{fmt(r['mean_difference'], 2)} "
                f"[{fmt(r['diff_ci_low'], 2)}, {fmt(r['diff_ci_high'], 2)}]",
                fmt_p(r["p_value"]),
                f"{fmt(r['mean_words_original'], 1)} / {fmt(r['mean_words_rewrite'], 1)}",
            ]
        )
    write_plain_table(
        rows,
        [
            "Style",
            "Scorer: measure",
            "Pairs",
            "Rewrite wins/ties/losses",
            "Rewrite win share [95% CI]",
            "Mean difference [95% CI]",
            "p",
            "Words original / rewrite",
        ],
        "Style bias of the judge and the reward model",
        "Each style set's rewritten chosen answer against the original chosen answer of the "
        "same prompt (same content, new tone). Win share: ties count half, 0.5 = no preference "
        "for the tone; mean difference: rewrite minus original score; p: sign-flip test of no "
        "difference. The rewrite is longer by construction, so tone and length are confounded.",
        label,
        md,
        tex,
        "style_bias",
    )


def plot_style_bias(
    table: pd.DataFrame, *, styles: Sequence[str], colors: dict[str, str]
) -> Figure:
    """Left: share of pairs the rewrite wins (judge total score; reward) with 95% CIs, 0.5 line.
    Right: mean score difference (rewrite - original) per judge criterion, per style."""
    fig, (ax_share, ax_diff) = plt.subplots(1, 2, figsize=(12.5, 4.8), width_ratios=(1, 1.35))
    judge_rows = table[table["measure"] == "total"]
    other = table[~table["measure"].isin(("total", *JUDGE_CRITERIA))]
    scorers = [
        (judge_rows, "o", "judge: total of 4 criteria"),
        (other, "s", other["scorer"].iloc[0] if len(other) else "reward"),
    ]
    x = np.arange(len(styles))
    for k, (rows, marker, name) in enumerate(scorers):
        rows = rows.set_index("style")
        offset = (k - 0.5) * 0.28
        for i, style in enumerate(styles):
            if style not in rows.index:
                continue
            r = rows.loc[style]
            share = r["win_share"]
            if math.isnan(share):
                continue
            ax_share.errorbar(
                [i + offset],
                [share],
                yerr=[[share - r["ci_low"]], [r["ci_high"] - share]],
                fmt=marker,
                color=colors[style],
                markerfacecolor=colors[style] if k == 0 else "white",
                capsize=4,
                markersize=7,
                elinewidth=1.5,
                gid=f"share:{name}:{style}",
            )
    ax_share.axhline(0.5, color="#666666", linestyle="--", linewidth=1, zorder=0)
    ax_share.text(
        len(styles) - 0.5,
        0.51,
        "0.5 = no preference",
        ha="right",
        va="bottom",
        fontsize=7.5,
        color="#666666",
    )
    ax_share.set_xlim(-0.6, len(styles) - 0.4)
    ax_share.set_ylim(-0.04, 1.04)
    ax_share.set_xticks(x, styles)
    ax_share.set_ylabel("Share of pairs the rewrite wins (ties half)")
    ax_share.set_title("Does the scorer prefer the rewrite? (95% CIs)", fontsize=10)
    ax_share.legend(
        handles=[
            Line2D([], [], marker="o", linestyle="none", color="#333333", label=scorers[0][2]),
            Line2D(
                [],
                [],
                marker="s",
                linestyle="none",
                color="#333333",
                markerfacecolor="white",
                label=scorers[1][2],
            ),
        ],
        loc="upper left",
        fontsize=8,
        frameon=False,
    )
    width = 0.8 / max(len(styles), 1)
    for i, style in enumerate(styles):
        rows = table[(table["style"] == style) & table["measure"].isin(JUDGE_CRITERIA)]
        rows = rows.set_index("measure").reindex(list(JUDGE_CRITERIA))
        pos = np.arange(len(JUDGE_CRITERIA)) + (i - (len(styles) - 1) / 2) * width
        diff = rows["mean_difference"].to_numpy(float)
        err = np.array(
            [
                diff - rows["diff_ci_low"].to_numpy(float),
                rows["diff_ci_high"].to_numpy(float) - diff,
            ]
        )
        for x_pos, d in zip(pos, diff, strict=True):
            if not math.isnan(d):
                ax_diff.annotate(
                    f"{d:+.2f}",
                    (x_pos, d),
                    xytext=(0, 3 if d >= 0 else -3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom" if d >= 0 else "top",
                    fontsize=7,
                    color="#333333",
                )
        bars = ax_diff.bar(
            pos,
            np.nan_to_num(diff),
            width,
            color=colors[style],
            label=style,
            yerr=np.nan_to_num(err),
            capsize=3,
            error_kw={"elinewidth": 1},
        )
        for bar, criterion in zip(bars.patches, JUDGE_CRITERIA, strict=True):
            bar.set_gid(f"diff:{style}:{criterion}")
    ax_diff.axhline(0, color="#333333", linewidth=0.8)
    low, high = ax_diff.get_ylim()
    span = max(high - low, 0.5)
    ax_diff.set_ylim(min(low, 0) - 0.12 * span, max(high, 0) + 0.12 * span)
    ax_diff.set_xticks(range(len(JUDGE_CRITERIA)), [c.capitalize() for c in JUDGE_CRITERIA])
    ax_diff.set_ylabel("Mean score difference, rewrite - original")
    ax_diff.set_title("Judge score difference per criterion (95% CIs)", fontsize=10)
    for ax in (ax_share, ax_diff):
        ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    judge_name = judge_rows["scorer"].iloc[0] if len(judge_rows) else "judge"
    fig.suptitle(
        f"Style bias: the same content in a new tone, scored by the {judge_name} and the "
        f"{scorers[1][2]}",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    handles, _ = ax_diff.get_legend_handles_labels()
    legend_below(fig, handles, ncol=len(styles))
    return fig


def figure_style_bias(
    table: pd.DataFrame,
    pdf: PathLike,
    png: PathLike,
    *,
    styles: Sequence[str],
    colors: dict[str, str],
    label: str,
) -> None:
    fig = plot_style_bias(table, styles=styles, colors=colors)
    write_figure(fig, label, pdf, png)
