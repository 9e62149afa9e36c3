"""Each measured cell of Tables 3-8 beside the paper's published value.

The paper's numbers live in `config/paper_results.yaml` (transcribed once, attributed to the
paper). `reproduction_frame` joins them with the table CSVs this workflow wrote; the figure puts
measured against published per table, with the identity line. For the embedded default the
comparison is a *miniature*: a tiny model on a fictional world, so the numbers are not expected
to agree; only for a run of the paper's setup is it a reproduction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from stylized_dpo.io import DataError, atomic_path
from stylized_dpo.records import HELM_FAMILIES
from stylized_dpo.report.common import SCENARIO_NAMES, TABLE_NUMBERS, model_colors, model_order
from stylized_dpo.report.inputs import PathLike
from stylized_dpo.report.tables import NA, read_table_csv

TABLE3_HEADERS = {
    "validation_loss": "Validation loss",
    "validation_accuracy": "Validation accuracy",
    "win_rate": "Win rate",
}
COMPARISONS = ("miniature", "reproduction")
PANEL_TITLES = {
    3: "loss, accuracy, win rate",
    4: "HELM mean win rates",
    5: "Accuracy",
    6: "Calibration",
    7: "Robustness",
    8: "Fairness",
}

COLUMNS = [
    "table",
    "model",
    "dataset",
    "column",
    "header",
    "paper",
    "measured",
    "difference",
    "paper_note",
    "measured_note",
    "comparison",
]


def column_header(table: int, key: str) -> str:
    if table == 3:
        return TABLE3_HEADERS.get(key, key)
    if table == 4 and key in HELM_FAMILIES:
        return key.capitalize()
    return SCENARIO_NAMES.get(key, key)


def load_paper_results(path: PathLike) -> dict[int, dict[str, dict[str, float | None]]]:
    """{table: {model: {column: value or None}}} from paper_results.yaml, type-checked."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("tables"), dict):
        raise DataError(path, None, "tables", "expected a mapping of table number to table")
    out: dict[int, dict[str, dict[str, float | None]]] = {}
    for number, table in data["tables"].items():
        where = f"tables.{number}"
        if number not in TABLE_NUMBERS:
            raise DataError(path, None, where, f"expected a table number in {TABLE_NUMBERS}")
        rows = table.get("rows") if isinstance(table, dict) else None
        if not isinstance(rows, dict):
            raise DataError(path, None, f"{where}.rows", "expected a mapping of model to cells")
        out[number] = {}
        for model, cells in rows.items():
            if not isinstance(cells, dict):
                raise DataError(path, None, f"{where}.rows.{model}", "expected a mapping")
            for key, value in cells.items():
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, int | float)
                ):
                    raise DataError(
                        path,
                        None,
                        f"{where}.rows.{model}.{key}",
                        f"expected a number or null, got {value!r}",
                    )
            out[number][model] = {k: (None if v is None else float(v)) for k, v in cells.items()}
    return out


def _split_notes(text: str, keys: Sequence[str]) -> dict[str, str]:
    """Parse a table CSV's `notes` cell ("key: note; key: note") back into {key: note}."""
    if not text:
        return {}
    pattern = r"(?:^|; )(" + "|".join(re.escape(k) for k in keys) + r"): "
    parts = re.split(pattern, text)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def reproduction_frame(
    tables: Mapping[int, PathLike], paper_results: PathLike, *, comparison: str
) -> pd.DataFrame:
    """One row per published cell: the paper's value, the measured one and their difference.

    A cell the paper prints N/A or the run could not measure stays, as NaN with a note.
    """
    if comparison not in COMPARISONS:
        raise ValueError(f"comparison must be one of {COMPARISONS}, got {comparison!r}")
    paper = load_paper_results(paper_results)
    rows: list[dict[str, Any]] = []
    for number in sorted(paper):
        if number not in tables:
            raise ValueError(f"no measured CSV given for table {number}")
        measured = read_table_csv(tables[number]).set_index("model")
        keys = [c for c in measured.columns if c not in ("dataset", "notes")]
        for model, cells in paper[number].items():
            present = model in measured.index
            notes = _split_notes(str(measured.at[model, "notes"]), keys) if present else {}
            for key, published in cells.items():
                value = math.nan
                note = ""
                if not present:
                    note = f"no {model} row in {tables[number]}"
                elif key not in measured.columns:
                    note = f"no {key} column in {tables[number]}"
                else:
                    value = float(measured.at[model, key])
                    note = notes.get(key, "")
                p = math.nan if published is None else published
                rows.append(
                    {
                        "table": number,
                        "model": model,
                        "dataset": measured.at[model, "dataset"] if present else model,
                        "column": key,
                        "header": column_header(number, key),
                        "paper": p,
                        "measured": value,
                        "difference": value - p,
                        "paper_note": "N/A in the paper" if published is None else "",
                        "measured_note": note,
                        "comparison": comparison,
                    }
                )
    return pd.DataFrame(rows, columns=COLUMNS)


def write_reproduction_csv(frame: pd.DataFrame, path: PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, na_rep=NA, float_format="%.6g")


def reproduction_figure(
    frame: pd.DataFrame,
    pdf: PathLike,
    png: PathLike,
    *,
    styles: Sequence[str],
    label: str = "",
) -> dict[int, int]:
    """Measured against published, one panel per table; returns the cells drawn per table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from stylized_dpo.report.plotting import label_below, save_figure

    colors = model_colors(styles)
    comparison = set(frame["comparison"])
    miniature = comparison == {"miniature"}
    fig, axes = plt.subplots(2, 3, figsize=(12, 7.6))
    drawn: dict[int, int] = {}
    for ax, number in zip(axes.flat, TABLE_NUMBERS, strict=True):
        part = frame[frame["table"] == number]
        ok = part.dropna(subset=["paper", "measured"])
        drawn[number] = len(ok)
        for model in model_order(styles):
            cells = ok[ok["model"] == model]
            ax.scatter(
                cells["paper"],
                cells["measured"],
                s=22,
                color=colors[model],
                edgecolor="white",
                linewidth=0.4,
                zorder=3,
            )
        values = pd.concat([ok["paper"], ok["measured"]])
        lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot(
            [lo - pad, hi + pad], [lo - pad, hi + pad], ls="--", lw=0.8, color="#888888", zorder=1
        )
        ax.set(xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad))
        summary = f"{len(ok)} of {len(part)} cells"
        if len(ok) >= 3 and ok["paper"].std() > 0 and ok["measured"].std() > 0:
            r = float(np.corrcoef(ok["paper"], ok["measured"])[0, 1])
            summary += f", Pearson r = {r:.2f}"
        # In the title, not over the axes, so it never hides a point.
        ax.set_title(f"Table {number}: {PANEL_TITLES[number]}\n{summary}", fontsize=10)
        ax.set_xlabel("Paper (published)", fontsize=9)
        ax.set_ylabel("This run (measured)", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    title = "Measured cells beside the paper's published values (dashed line: equal)"
    if miniature:
        title = "Miniature, not a reproduction. " + title
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    names = frame.drop_duplicates("model").set_index("model")["dataset"]
    handles = [
        Line2D([], [], marker="o", ls="", color=colors[m], label=names.get(m, m))
        for m in model_order(styles)
    ]
    legend = fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=len(handles),
        frameon=False,
        fontsize=9,
    )
    if label or miniature:
        text = label or ""
        if miniature:
            text = (text + " ").lstrip() + (
                "Its numbers are not expected to match the paper's; the panels show the "
                "comparison's form, which a run of config/paper.yaml fills in."
            )
        label_below(fig, legend, text, width=140, gap=0.01)
    save_figure(fig, pdf, png)
    plt.close(fig)
    return drawn
