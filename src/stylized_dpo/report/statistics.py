"""Tables and figures of the statistics beyond the paper: the significance table, the paper's
claims checked against it, the intervals beside Tables 4-8, and the style-bias audit.

- `significance.{csv,md,tex}`: every paired comparison (evals/significance.py); the CSV has every
  column, the md/tex the ones a reader needs (difference [95% CI], p, Holm p, which side wins).
- `claims.{csv,md}` and `figures/claims.{pdf,png}`: each directional claim of the paper
  (config/paper_claims.yaml) with the measured difference, its interval and its status.
- `helm_ci.csv`: the cells of Tables 4-8 with their bootstrap intervals (from
  `results/helm/summary.csv`), long format, so the paper-shaped tables keep their shape.
- `style_bias.{csv,md,tex}` and `figures/style_bias.{pdf,png}` (evals/style_bias.py).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from stylized_dpo.io import atomic_path  # noqa: E402
from stylized_dpo.records import JUDGE_CRITERIA  # noqa: E402
from stylized_dpo.report.common import SCENARIO_NAMES, display_name  # noqa: E402
from stylized_dpo.report.inputs import PathLike, read_helm_summary  # noqa: E402
from stylized_dpo.report.plotting import legend_below, write_figure  # noqa: E402
from stylized_dpo.report.tables import _md_escape, tex_escape  # noqa: E402

STATUS_COLORS = {
    "supported": "#009E73",
    "contradicted": "#D55E00",
    "inconclusive": "#8c8c8c",
    "not measured": "#cccccc",
}
FAMILY_TABLE = {"accuracy": 5, "calibration": 6, "robustness": 7, "fairness": 8}


def _write_text(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def _write_csv(frame: pd.DataFrame, path: PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_p(p: float) -> str:
    if p is None or math.isnan(p):
        return "n/a"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def write_plain_table(
    rows: Sequence[Sequence[str]],
    header: Sequence[str],
    title: str,
    caption: str,
    label: str,
    md: PathLike,
    tex: PathLike,
    tex_label: str,
) -> None:
    """A rendered table (already formatted cells) as Markdown and a booktabs LaTeX table."""
    lines = [f"**{_md_escape(title)}**", ""]
    if label:
        lines += [f"_{_md_escape(label)}_", ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
    lines.append("|" + "---|" * 2 + "---:|" * (len(header) - 2))
    lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    lines += ["", _md_escape(caption)]
    _write_text(md, "\n".join(lines) + "\n")
    cap = tex_escape(f"{title}. {caption}" + (f" {label}" if label else ""))
    tex_lines = [
        f"% {title} (stylized_dpo.report.statistics; needs \\usepackage{{booktabs,longtable}})",
        r"\begin{longtable}{ll" + "r" * (len(header) - 2) + "}",
        rf"\caption{{{cap}}}\label{{tab:{tex_label}}}\\",
        r"\toprule",
        " & ".join(tex_escape(h) for h in header) + r" \\",
        r"\midrule",
        r"\endhead",
    ]
    tex_lines += [" & ".join(tex_escape(c) for c in r) + r" \\" for r in rows]
    tex_lines += [r"\bottomrule", r"\end{longtable}"]
    _write_text(tex, "\n".join(tex_lines) + "\n")


def measure_name(source: str, family: str, scenario: str) -> str:
    if source == "judge":
        return f"judge {family}"
    where = SCENARIO_NAMES.get(scenario, scenario)
    return f"HELM {family} {where}"


# ---- significance -----------------------------------------------------------------------------


def write_significance(
    table: pd.DataFrame, csv: PathLike, md: PathLike, tex: PathLike, *, base_name: str, label: str
) -> None:
    _write_csv(table, csv)
    rows = []
    for _, r in table.iterrows():
        rows.append(
            [
                f"{display_name(r['model'], base_name)} vs "
                f"{display_name(r['reference'], base_name)}",
                measure_name(r["source"], r["family"], r["scenario"]),
                fmt(r["value_model"]),
                fmt(r["value_reference"]),
                f"{fmt(r['difference'])} [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]",
                fmt_p(r["p_value"]),
                fmt_p(r["p_holm"]),
                {"model": "model", "reference": "reference", "none": "-"}[r["better"]],
            ]
        )
    write_plain_table(
        rows,
        [
            "Comparison",
            "Measure",
            "Model",
            "Reference",
            "Difference [95% CI]",
            "p",
            "Holm p",
            "Better",
        ],
        "Paired comparisons between models",
        "Each model against SFT and against the base model on the same items. Judge: mean score "
        "difference, paired bootstrap CI, sign-flip permutation p. HELM cells: McNemar's exact "
        "test (0/1 outcomes) or sign-flip test (F1), ECE by swap permutation; mean win rates: "
        "joint bootstrap over instances and swap permutation. Holm's correction across the "
        "whole table; Better: the side favoured at the corrected level (lower ECE is better).",
        label,
        md,
        tex,
        "significance",
    )


# ---- claims -----------------------------------------------------------------------------------


def claim_label(row: pd.Series, base_name: str) -> str:
    source, family, *rest = row["measure"].split(":")
    scenario = rest[0] if rest else ""
    arrow = "higher" if row["direction"] == "higher" else "lower"
    what = measure_name(source, family, scenario)
    return (
        f"{display_name(row['model'], base_name)} {arrow} than "
        f"{display_name(row['reference'], base_name)}: {what}"
    )


def write_claims(
    claims: pd.DataFrame, csv: PathLike, md: PathLike, *, base_name: str, label: str
) -> None:
    _write_csv(claims, csv)
    lines = ["**The paper's directional claims in this run**", ""]
    if label:
        lines += [f"_{_md_escape(label)}_", ""]
    lines += [
        "| Claim | Difference [95% CI] | Holm p | Status | Paper |",
        "|---|---:|---:|---|---|",
    ]
    for _, r in claims.iterrows():
        lines.append(
            f"| {_md_escape(claim_label(r, base_name))} | {fmt(r['difference'])} "
            f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}] | {fmt_p(r['p_holm'])} | {r['status']} "
            f"| {_md_escape(str(r['quote']))} |"
        )
    _write_text(md, "\n".join(lines) + "\n")


def plot_claims(claims: pd.DataFrame, *, base_name: str, alpha: float) -> Figure:
    """One row per claim: the measured difference (model - reference) with its 95% interval,
    coloured by status; judge claims (score points) and HELM claims (win-rate points) apart."""
    groups = [
        (
            "LLM judge: mean score difference (1-5 scale)",
            claims[claims["measure"].str.startswith("judge:")],
        ),
        ("HELM: mean win rate difference", claims[claims["measure"].str.startswith("helm:")]),
    ]
    groups = [(t, g) for t, g in groups if len(g)]
    heights = [max(len(g), 1) for _, g in groups]
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(11, 0.42 * sum(heights) + 1.6 * len(groups) + 0.6),
        height_ratios=heights,
        squeeze=False,
    )
    for ax, (title, frame) in zip(axes[:, 0], groups, strict=True):
        y = np.arange(len(frame))[::-1]
        labels = []
        for yi, (_, r) in zip(y, frame.iterrows(), strict=True):
            color = STATUS_COLORS[r["status"]]
            labels.append("\n".join(textwrap.wrap(claim_label(r, base_name), 62)))
            d = r["difference"]
            if math.isnan(d):
                ax.text(
                    0, yi, "not measured", ha="center", va="center", fontsize=8, color="#555555"
                )
                continue
            ax.errorbar(
                [d],
                [yi],
                xerr=[[d - r["ci_low"]], [r["ci_high"] - d]],
                fmt="o",
                color=color,
                ecolor=color,
                capsize=3,
                markersize=6,
                elinewidth=1.6,
                gid=f"claim:{r['id']}",
            )
            ax.annotate(
                f"{r['status']}  (Holm p {fmt_p(r['p_holm'])})",
                (1.01, yi),
                xycoords=("axes fraction", "data"),
                va="center",
                fontsize=8,
                color=color,
            )
        ax.axvline(0, color="#666666", linewidth=1, linestyle="--", zorder=0)
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_ylim(-0.7, len(frame) - 0.3)
        ax.set_title(title, fontsize=10, loc="left")
        ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.set_xlabel("model - reference (claimed direction: see label)", fontsize=8)
    handles = [
        Line2D([], [], marker="o", linestyle="none", color=c, label=s)
        for s, c in STATUS_COLORS.items()
        if s in set(claims["status"])
    ]
    fig.suptitle(
        f"The paper's directional claims in this run (95% CIs; status at Holm-corrected "
        f"alpha = {alpha:g})",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 0.86, 0.97))
    legend_below(fig, handles, ncol=len(handles))
    return fig


def figure_claims(
    claims: pd.DataFrame, pdf: PathLike, png: PathLike, *, base_name: str, alpha: float, label: str
) -> None:
    fig = plot_claims(claims, base_name=base_name, alpha=alpha)
    write_figure(fig, label, pdf, png)


# ---- intervals beside Tables 4-8 --------------------------------------------------------------


HELM_CI_COLUMNS = ("table", "model", "family", "scenario", "metric", "value", "ci_low", "ci_high")


def helm_ci_table(summary: PathLike, models: Sequence[str]) -> pd.DataFrame:
    """The cells of Tables 4 (mean win rates) and 5-8 (every scenario) with their intervals."""
    frame = read_helm_summary(summary)
    frame = frame[frame["model"].isin(models)]
    rows = []
    for _, r in frame.iterrows():
        tables = [FAMILY_TABLE[r["family"]]] + ([4] if r["scenario"] == "mean_win_rate" else [])
        for t in tables:
            rows.append({"table": t, **{c: r[c] for c in HELM_CI_COLUMNS if c != "table"}})
    out = pd.DataFrame(rows, columns=list(HELM_CI_COLUMNS))
    order = {m: i for i, m in enumerate(models)}
    out["_order"] = out["model"].map(order)
    return out.sort_values(["table", "_order"], kind="stable").drop(columns="_order")


def write_helm_ci(summary: PathLike, csv: PathLike, models: Sequence[str]) -> pd.DataFrame:
    table = helm_ci_table(summary, models)
    _write_csv(table, csv)
    return table


# ---- style bias -------------------------------------------------------------------------------


def write_style_bias(
    table: pd.DataFrame, csv: PathLike, md: PathLike, tex: PathLike, *, label: str
) -> None:
    _write_csv(table, csv)
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
