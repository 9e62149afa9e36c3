"""Every value of the per-seed tables side by side across training seeds (config `seeds`), with
the mean and a 95% Student-t interval across seeds.

One seed cannot say which differences between models are real; a few seeds say how far a value
moves when only the training seed changes (initialisation, data order, sampling). The interval
is mean +- t(0.975, n - 1) * sd / sqrt(n) over the n seeds that have the value (sd with n - 1):
with few seeds it is wide, as it should be. A value in fewer than two seeds has no interval.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import stats

from stylized_dpo.io import atomic_path
from stylized_dpo.report.tables import NA, md_escape, read_table_csv

LEVEL = 0.95
VALUE_COLUMNS = ("source", "row", "measure")
NON_VALUES = ("notes",)
"""Text columns of the tables that describe a value rather than name its row."""


@dataclass(frozen=True)
class SeedInterval:
    """Mean of one value over seeds and its t-interval (NaN bounds below two seeds)."""

    n: int
    mean: float
    ci_low: float
    ci_high: float


def t_interval(values: Sequence[float], level: float = LEVEL) -> SeedInterval:
    """Mean and Student-t interval of the finite `values` (one per seed)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(finite)
    if n == 0:
        return SeedInterval(0, math.nan, math.nan, math.nan)
    mean = sum(finite) / n
    if n < 2:
        return SeedInterval(n, mean, math.nan, math.nan)
    sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return SeedInterval(n, mean, mean - half, mean + half)


def long_values(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """A table as one row per value: `source`, `row` (its text columns joined), `measure` (the
    numeric column), `value`. Text columns name the row; `notes` is left out."""
    frame = frame.drop(columns=[c for c in NON_VALUES if c in frame.columns])
    keys = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    measures = [c for c in frame.columns if c not in keys]
    rows = (
        frame[keys].astype(str).agg(" / ".join, axis=1)
        if keys
        else pd.Series([str(i) for i in range(len(frame))], index=frame.index)
    )
    if rows.duplicated().any():
        dup = rows[rows.duplicated()].iloc[0]
        raise ValueError(f"{source}: row {dup!r} appears twice (its text columns {keys})")
    return pd.DataFrame(
        [
            {"source": source, "row": rows[i], "measure": m, "value": float(frame.at[i, m])}
            for i in frame.index
            for m in measures
        ],
        columns=[*VALUE_COLUMNS, "value"],
    )


def seeds_summary(tables: Mapping[int, Mapping[str, pd.DataFrame]]) -> pd.DataFrame:
    """`tables[seed][source]` -> one row per value: `seed_<s>` for each seed, `n_seeds`,
    `mean`, `ci_low`, `ci_high`. Rows keep the first seed's order; a value some seeds lack
    counts only the seeds that have it."""
    seeds = list(tables)
    long = pd.concat(
        [
            long_values(frame, source).assign(seed=seed)
            for seed, sources in tables.items()
            for source, frame in sources.items()
        ],
        ignore_index=True,
    )
    order = long.drop_duplicates(list(VALUE_COLUMNS))[list(VALUE_COLUMNS)]
    wide = long.pivot_table(
        index=list(VALUE_COLUMNS), columns="seed", values="value", dropna=False, aggfunc="first"
    )
    wide = order.merge(wide.reset_index(), on=list(VALUE_COLUMNS), how="left")
    per_seed = {f"seed_{s}": wide[s] if s in wide.columns else math.nan for s in seeds}
    out = wide[list(VALUE_COLUMNS)].assign(**per_seed)
    intervals = [t_interval(list(values)) for values in out[list(per_seed)].to_numpy()]
    return out.assign(
        n_seeds=[i.n for i in intervals],
        mean=[i.mean for i in intervals],
        ci_low=[i.ci_low for i in intervals],
        ci_high=[i.ci_high for i in intervals],
    )


def _cell(x: float) -> str:
    return NA if not math.isfinite(x) else f"{x:.3f}"


def to_markdown(summary: pd.DataFrame, label: str = "") -> str:
    seed_cols = [c for c in summary.columns if c.startswith("seed_")]
    lines = ["**Every table value across training seeds: mean and 95% t-interval**", ""]
    if label:
        lines += [f"_{md_escape(label)}_", ""]
    header = ["source", "row", "measure", *seed_cols, "mean", "95% interval"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * 3 + "---:|" * (len(seed_cols) + 2))
    for rec in summary.to_dict("records"):
        interval = (
            f"[{_cell(rec['ci_low'])}, {_cell(rec['ci_high'])}]"
            if math.isfinite(rec["ci_low"])
            else "n/a"
        )
        cells = [md_escape(str(rec[c])) for c in ("source", "row", "measure")]
        cells += [_cell(rec[c]) for c in seed_cols] + [_cell(rec["mean"]), interval]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Interval: mean +- t(0.975, n - 1) sd / sqrt(n) over the n seeds with the value "
        "(sd with n - 1); n/a below two seeds.",
    ]
    return "\n".join(lines) + "\n"


def write_seeds_summary(
    paths: Mapping[int, Mapping[str, str | os.PathLike[str]]],
    csv: str | os.PathLike[str],
    md: str | os.PathLike[str],
    label: str = "",
) -> pd.DataFrame:
    """Read every seed's tables (`paths[seed][source]`, "n/a" as missing) and write the summary."""
    tables = {
        seed: {source: read_table_csv(path) for source, path in sources.items()}
        for seed, sources in paths.items()
    }
    summary = seeds_summary(tables)
    with atomic_path(csv) as tmp:
        summary.to_csv(tmp, index=False, na_rep=NA, float_format="%.6g")
    with atomic_path(md) as tmp:
        Path(tmp).write_text(to_markdown(summary, label), encoding="utf-8")
    return summary
