"""Paired comparisons and the paper's claims across training seeds: every comparison of the
per-seed significance tables with its mean difference and t-interval across seeds and the number
of seeds that found it significant each way (`significance_across_seeds`), and each paper claim
seed by seed with the verdict across seeds (`claims_across_seeds`), read from each seed's
tables, never recomputed."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import pandas as pd

from stylized_dpo.io import DataError
from stylized_dpo.report.common import display_name
from stylized_dpo.report.inputs import read_csv_table
from stylized_dpo.report.seeds import SEEDS_INTERVAL, t_interval
from stylized_dpo.report.statistics import (
    claim_label,
    fmt,
    measure_name,
    write_csv,
    write_plain_table,
)
from stylized_dpo.report.tables import md_escape, write_text

SIGNIFICANCE_KEYS = ("model", "reference", "source", "family", "scenario", "metric")
BETTER = ("model", "reference", "none")


def read_significance(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One seed's significance.csv: the comparison's keys, `difference` and `better`."""
    frame = read_csv_table(
        path,
        [*SIGNIFICANCE_KEYS, "difference", "better"],
        keys=SIGNIFICANCE_KEYS,
        texts=("better",),
        key_text=lambda key: " / ".join(k for k in key if k),
    )
    for line, better in zip(frame["line"], frame["better"], strict=True):
        if better not in BETTER:
            raise DataError(path, line, "better", f"expected one of {BETTER}, got {better!r}")
    return frame.drop(columns="line")


def significance_across_seeds(tables: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """`tables[seed]` (each seed's significance table) -> one row per comparison: the
    difference in each seed (`difference_seed_<s>`), `n_seeds`, its `mean`, `ci_low`,
    `ci_high` across seeds, and in how many seeds Holm's correction found the model better
    (`seeds_model_better`) or the reference better (`seeds_reference_better`), as each seed's
    table decided it. Rows keep the first seed's order."""
    keys = list(SIGNIFICANCE_KEYS)
    order = pd.concat([t[keys] for t in tables.values()]).drop_duplicates()
    out = order.reset_index(drop=True)
    for seed, table in tables.items():
        merged = out[keys].merge(table, on=keys, how="left")
        out[f"difference_seed_{seed}"] = merged["difference"].to_numpy()
        out[f"_better_{seed}"] = merged["better"].to_numpy()
    per_seed = [f"difference_seed_{s}" for s in tables]
    intervals = [t_interval(list(v)) for v in out[per_seed].to_numpy()]
    better = out[[f"_better_{s}" for s in tables]]
    out = out.drop(columns=list(better.columns))
    return out.assign(
        n_seeds=[i.n for i in intervals],
        mean=[i.mean for i in intervals],
        ci_low=[i.ci_low for i in intervals],
        ci_high=[i.ci_high for i in intervals],
        seeds_model_better=(better == "model").sum(axis=1).to_numpy(),
        seeds_reference_better=(better == "reference").sum(axis=1).to_numpy(),
    )


CLAIM_STATUSES = ("supported", "contradicted", "inconclusive", "not measured")
CLAIM_TEXTS = ("model", "reference", "measure", "direction", "status", "quote")
HOLDS = "holds in all seeds"


def read_claims(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One seed's claims.csv: each claim's fields, its `difference` and `status`."""
    frame = read_csv_table(
        path, ["id", *CLAIM_TEXTS, "difference"], keys=("id",), texts=CLAIM_TEXTS,
        nonempty_key=True,
    )  # fmt: skip
    for line, status in zip(frame["line"], frame["status"], strict=True):
        if status not in CLAIM_STATUSES:
            raise DataError(
                path, line, "status", f"expected one of {CLAIM_STATUSES}, got {status!r}"
            )
    return frame.drop(columns="line")


def overall_verdict(statuses: Sequence[str]) -> str:
    """A claim across seeds: it holds only if every seed supports it."""
    n = len(statuses)
    supported, contradicted = statuses.count("supported"), statuses.count("contradicted")
    if supported == n:
        return HOLDS
    if contradicted == n:
        return "contradicted in all seeds"
    if statuses.count("inconclusive") == n:
        return "inconclusive in all seeds"
    if supported and contradicted:
        return f"conflicting: supported in {supported}, contradicted in {contradicted} of {n}"
    if supported:
        return f"supported in {supported} of {n} seeds"
    if contradicted:
        return f"contradicted in {contradicted} of {n} seeds"
    return "not shown in any seed"


def claims_across_seeds(claims: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """`claims[seed]` (each seed's claims table, the same claims) -> one row per claim: its
    status and difference in each seed (`status_seed_<s>`, `difference_seed_<s>`), how many
    seeds gave each status (`n_<status>`), `overall` (`overall_verdict`), and the difference's
    mean and t-interval across seeds."""
    seeds = list(claims)
    first = claims[seeds[0]]
    for seed, frame in claims.items():
        if list(frame["id"]) != list(first["id"]):
            raise ValueError(
                f"claims of seed {seed} ({', '.join(frame['id'])}) are not those of seed "
                f"{seeds[0]} ({', '.join(first['id'])}): every seed must check the same claims"
            )
    out = first[["id", "model", "reference", "measure", "direction"]].reset_index(drop=True)
    status = pd.DataFrame({f"status_seed_{s}": claims[s]["status"].to_numpy() for s in seeds})
    diff = pd.DataFrame({f"difference_seed_{s}": claims[s]["difference"].to_numpy() for s in seeds})
    counts = {
        f"n_{st.replace(' ', '_')}": (status == st).sum(axis=1).to_numpy() for st in CLAIM_STATUSES
    }
    diffs = [t_interval(list(v)) for v in diff.to_numpy()]
    return pd.concat([out, status, diff], axis=1).assign(
        **counts,
        overall=[overall_verdict(list(r)) for r in status.to_numpy()],
        difference_mean=[d.mean for d in diffs],
        difference_ci_low=[d.ci_low for d in diffs],
        difference_ci_high=[d.ci_high for d in diffs],
        quote=first["quote"].to_numpy(),
    )


def _fmt(x: float) -> str:
    """`fmt`, without the "-0.000" a mean of differences that cancel can print."""
    return fmt(0.0 if math.isfinite(x) and round(x, 3) == 0 else x)


def write_significance_seeds(
    table: pd.DataFrame,
    csv: str | os.PathLike[str],
    md: str | os.PathLike[str],
    tex: str | os.PathLike[str],
    *,
    base_name: str,
    label: str,
) -> None:
    write_csv(table, csv)
    seeds = [c.removeprefix("difference_seed_") for c in table.columns if "_seed_" in c]
    rows = [
        [
            f"{display_name(r['model'], base_name)} vs {display_name(r['reference'], base_name)}",
            measure_name(r["source"], r["family"], r["scenario"]),
            *(_fmt(r[f"difference_seed_{s}"]) for s in seeds),
            f"{_fmt(r['mean'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]",
            f"{r['seeds_model_better']} / {r['seeds_reference_better']} of {r['n_seeds']}",
        ]
        for _, r in table.iterrows()
    ]
    write_plain_table(
        rows,
        [
            "Comparison",
            "Measure",
            *(f"Seed {s}" for s in seeds),
            "Mean [95% CI]",
            "Model / reference better",
        ],
        "Paired comparisons between models across training seeds",
        "Difference (model - reference) of each comparison of results/tables/significance.csv "
        "in each seed, its mean and " + SEEDS_INTERVAL + " Model / reference better: in how many "
        "seeds the comparison is significant after Holm's correction in that seed's table, in "
        "favour of the model or of the reference (lower ECE is better).",
        label,
        md,
        tex,
        "significance-seeds",
    )


def write_claims_seeds(
    claims: pd.DataFrame,
    csv: str | os.PathLike[str],
    md: str | os.PathLike[str],
    *,
    base_name: str,
    label: str,
) -> None:
    write_csv(claims, csv)
    seeds = [c.removeprefix("status_seed_") for c in claims.columns if c.startswith("status_")]
    lines = ["**The paper's directional claims across training seeds**", ""]
    if label:
        lines += [f"_{md_escape(label)}_", ""]
    header = ["Claim", *(f"Seed {s}" for s in seeds), "Overall", "Mean difference [95% CI]"]
    lines += ["| " + " | ".join(header) + " |", "|---|" + "---|" * (len(seeds) + 1) + "---:|"]
    for _, r in claims.iterrows():
        cells = [
            md_escape(claim_label(r, base_name)),
            *(r[f"status_seed_{s}"] for s in seeds),
            f"**{r['overall']}**" if r["overall"] == HOLDS else r["overall"],
            f"{_fmt(r['difference_mean'])} [{_fmt(r['difference_ci_low'])}, "
            f"{_fmt(r['difference_ci_high'])}]",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    counts = {v: int((claims["overall"] == v).sum()) for v in dict.fromkeys(claims["overall"])}
    lines += [
        "",
        f"{len(claims)} claims (config/paper_claims.yaml), each seed's status from its "
        "results/tables/claims.csv (Holm-corrected); a claim holds in all seeds only if every "
        "seed supports it. "
        + "; ".join(f"{v}: {n}" for v, n in counts.items())
        + ". "
        + SEEDS_INTERVAL,
    ]
    write_text(md, "\n".join(lines) + "\n")
