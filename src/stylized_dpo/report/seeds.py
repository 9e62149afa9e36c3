"""The study across training seeds (config `seeds`), each with the mean and a 95% Student-t
interval across seeds: every value of the per-seed tables side by side (`seeds_summary`) and each
of Tables 3-8 in its own shape (`table_across_seeds`); comparisons and claims across seeds are in
`seeds_claims`.

One seed cannot say which differences between models are real; a few seeds say how far a value
moves when only the training seed changes (initialisation, data order, sampling). The interval
is mean +- t(0.975, n - 1) * sd / sqrt(n) over the n seeds that have the value (sd with n - 1):
with few seeds it is wide, as it should be. A value in fewer than two seeds has no interval.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from scipy import stats

from stylized_dpo.io import atomic_path
from stylized_dpo.report.tables import (
    NA,
    Column,
    Table,
    is_missing,
    md_escape,
)

LEVEL = 0.95
VALUE_COLUMNS = ("source", "row", "measure")
NON_VALUES = ("notes",)
"""Text columns of the tables that describe a value rather than name its row."""


SEEDS_INTERVAL = (
    "95% interval across seeds: mean +- t(0.975, n - 1) sd / sqrt(n) over the n seeds with the "
    "value (sd with n - 1)."
)
"""`t_interval` in words, for the captions of the tables across seeds."""


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
    """Read every seed's tables (`paths[seed][source]`; "n/a", or an empty cell as the stage
    CSVs write a missing measure, as missing) and write the summary."""
    tables = {
        seed: {
            source: pd.read_csv(path, na_values=[NA, ""], keep_default_na=False)
            for source, path in sources.items()
        }
        for seed, sources in paths.items()
    }
    summary = seeds_summary(tables)
    with atomic_path(csv) as tmp:
        summary.to_csv(tmp, index=False, na_rep=NA, float_format="%.6g")
    with atomic_path(md) as tmp:
        Path(tmp).write_text(to_markdown(summary, label), encoding="utf-8")
    return summary


# ---- the paper's tables across seeds ---------------------------------------------------------


def _seed_list(seeds: Sequence[int]) -> str:
    return ", ".join(str(s) for s in seeds)


def _cell_notes(tables: Mapping[int, Table], model: str, key: str) -> str:
    """The seeds' footnotes of one cell: one text if they agree, else each seed's."""
    notes = {s: t.notes[(model, key)] for s, t in tables.items() if (model, key) in t.notes}
    if len(set(notes.values())) <= 1:
        return next(iter(notes.values()), "")
    return "; ".join(f"seed {s}: {note}" for s, note in notes.items())


def table_across_seeds(tables: Mapping[int, Table], label: str = "") -> Table:
    """`tables[seed]` (one paper table per seed, same rows and columns) -> the same table with
    each displayed cell the mean over seeds and its t-interval (`<key>_mean`, `<key>_ci_low`,
    `<key>_ci_high`, `<key>_n_seeds`). A cell some seeds lack is the mean of the others, with a
    footnote naming the seeds without it."""
    seeds = list(tables)
    first = tables[seeds[0]]
    keys = [c.key for c in first.columns]
    for seed, table in tables.items():
        if table.rows != first.rows or [c.key for c in table.columns] != keys:
            raise ValueError(
                f"table {first.number}: seed {seed}'s rows or columns differ from seed "
                f"{seeds[0]}'s ({table.rows} x {[c.key for c in table.columns]} against "
                f"{first.rows} x {keys})"
            )
    values: dict[str, dict[str, float]] = {}
    notes: dict[tuple[str, str], str] = {}
    for model in first.rows:
        row: dict[str, float] = {}
        for key in keys:
            interval = t_interval([t.values.at[model, key] for t in tables.values()])
            row |= {
                f"{key}_mean": interval.mean,
                f"{key}_ci_low": interval.ci_low,
                f"{key}_ci_high": interval.ci_high,
                f"{key}_n_seeds": float(interval.n),
            }
            note = _cell_notes(tables, model, key)
            lacking = [s for s, t in tables.items() if is_missing(t.values.at[model, key])]
            if lacking and interval.n:
                note = f"mean of {interval.n} of {len(seeds)} seeds (n/a in seed "
                note += f"{_seed_list(lacking)}: {_cell_notes(tables, model, key)})"
            if note:
                notes[(model, f"{key}_mean")] = note
        values[model] = row
    caption = (
        f"Each cell: the mean over seeds {_seed_list(seeds)} (config `seeds`) of Table "
        f"{first.number}'s cell (one table per seed: results/tables/table{first.number}.csv "
        f"for the first, results/seeds/<s>/tables/table{first.number}.csv for the others), "
        "with its 95% Student-t interval across seeds in brackets: mean +- t(0.975, n - 1) "
        "sd / sqrt(n) over the n seeds with a value (<column>_n_seeds in the CSV). Every "
        "seed's value: results/tables/seeds_summary.csv. Each seed's table: " + first.caption
    )
    return replace(
        first,
        title=f"{first.title}, mean over {len(seeds)} training seeds (95% t-interval)",
        caption=caption,
        columns=tuple(
            Column(
                f"{c.key}_mean",
                c.header,
                c.digits,
                ci=(f"{c.key}_ci_low", f"{c.key}_ci_high"),
            )
            for c in first.columns
        ),
        values=pd.DataFrame.from_dict(values, orient="index"),
        notes=notes,
        label=label,
    )
