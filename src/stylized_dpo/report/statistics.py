"""Tables and figures of the statistics beyond the paper: the significance table, the paper's
claims checked against it, the intervals beside Tables 4-8, and the style-bias audit.

- `significance.{csv,md,tex}`: every paired comparison (evals/significance.py); the CSV has every
  column, the md/tex the ones a reader needs (difference [95% CI], p, Holm p, which side wins).
- `claims.{csv,md}` and `figures/claims.{pdf,png}`: each directional claim of the paper
  (config/paper_claims.yaml) with the measured difference, its interval and its status.
- `helm_ci.csv`: the cells of Tables 4-8 with their bootstrap intervals (from
  `results/helm/summary.csv`), long format, so the paper-shaped tables keep their shape.

The style-bias audit's table and figure (evals/style_bias.py) are in `report/style_bias.py`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from stylized_dpo.io import atomic_path  # noqa: E402
from stylized_dpo.report.common import SCENARIO_NAMES, display_name  # noqa: E402
from stylized_dpo.report.inputs import PathLike, read_helm_summary  # noqa: E402
from stylized_dpo.report.paper_tables import HELM_TABLE_FAMILY  # noqa: E402
from stylized_dpo.report.plotting import legend_below, write_figure  # noqa: E402
from stylized_dpo.report.tables import md_escape, tex_escape, write_text  # noqa: E402

STATUS_COLORS = {
    "supported": "#009E73",
    "contradicted": "#D55E00",
    "inconclusive": "#8c8c8c",
    "not measured": "#cccccc",
}
FAMILY_TABLE = {family: number for number, family in HELM_TABLE_FAMILY.items()}


def write_csv(frame: pd.DataFrame, path: PathLike) -> None:
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
    lines = [f"**{md_escape(title)}**", ""]
    if label:
        lines += [f"_{md_escape(label)}_", ""]
    lines.append("| " + " | ".join(md_escape(h) for h in header) + " |")
    lines.append("|" + "---|" * 2 + "---:|" * (len(header) - 2))
    lines += ["| " + " | ".join(md_escape(c) for c in r) + " |" for r in rows]
    lines += ["", md_escape(caption)]
    write_text(md, "\n".join(lines) + "\n")
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
    write_text(tex, "\n".join(tex_lines) + "\n")


def measure_name(source: str, family: str, scenario: str) -> str:
    if source == "judge":
        return f"judge {family}"
    where = SCENARIO_NAMES.get(scenario, scenario)
    return f"HELM {family} {where}"


# ---- significance -----------------------------------------------------------------------------


def write_significance(
    table: pd.DataFrame, csv: PathLike, md: PathLike, tex: PathLike, *, base_name: str, label: str
) -> None:
    write_csv(table, csv)
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
    write_csv(claims, csv)
    lines = ["**The paper's directional claims in this run**", ""]
    if label:
        lines += [f"_{md_escape(label)}_", ""]
    lines += [
        "| Claim | Difference [95% CI] | Holm p | Status | Paper |",
        "|---|---:|---:|---|---|",
    ]
    for _, r in claims.iterrows():
        lines.append(
            f"| {md_escape(claim_label(r, base_name))} | {fmt(r['difference'])} "
            f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}] | {fmt_p(r['p_holm'])} | {r['status']} "
            f"| {md_escape(str(r['quote']))} |"
        )
    write_text(md, "\n".join(lines) + "\n")


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
    write_csv(table, csv)
    return table
