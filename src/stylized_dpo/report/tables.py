"""A table of the report and its renderings: CSV, LaTeX, Markdown and PDF.

A `Table` holds numbers (NaN where missing) and a footnote for every missing cell, so no blank is
ever silent: each rendering prints "n/a" with a footnote marker, and the CSV writes "n/a" plus a
`notes` column. Uncertainty travels in extra columns (`<key>_std`, `<key>_ci_low/high`) and is
rendered as "mean ± std" or "value [low, high]".

The paper's Tables 3-8 are built in `report/paper_tables.py`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from stylized_dpo.io import atomic_path
from stylized_dpo.report.inputs import PathLike

NA = "n/a"


@dataclass(frozen=True)
class Column:
    """A displayed column: one value key of the table, optionally with its uncertainty keys."""

    key: str
    """Name of the value column in `Table.values` and in the CSV."""
    header: str
    """Header as the paper prints it."""
    digits: int = 2
    std: str | None = None
    """Key of a standard deviation, rendered "value ± std"."""
    ci: tuple[str, str] | None = None
    """Keys of an interval, rendered "value [low, high]"."""


@dataclass(frozen=True)
class Table:
    """One of the paper's tables: numbers per model, footnotes for missing or annotated cells."""

    number: int
    title: str
    """The paper's caption line, e.g. "Table 5: Results for Accuracy"."""
    caption: str
    """What the numbers are and where they come from."""
    columns: tuple[Column, ...]
    values: pd.DataFrame
    """Index: model names (row order); columns: every value key (displayed or not), floats."""
    row_names: Mapping[str, str]
    """Model name -> row label."""
    notes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """(model, column key) -> footnote. Every missing displayed value has one."""
    label: str = ""
    """What kind of run made the table (e.g. the embedded default's miniature); "" if none."""
    row_header: str = "Dataset"

    def __post_init__(self) -> None:
        for column in self.columns:
            if column.key not in self.values.columns:
                raise ValueError(f"table {self.number}: no values for column {column.key!r}")
            for model in self.values.index:
                value = self.values.at[model, column.key]
                if is_missing(value) and (model, column.key) not in self.notes:
                    raise ValueError(
                        f"table {self.number}: {model}/{column.key} is missing without a note"
                    )
        for model in self.values.index:
            if model not in self.row_names:
                raise ValueError(f"table {self.number}: no row name for {model!r}")

    @property
    def rows(self) -> list[str]:
        return list(self.values.index)


def is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# ----------------------------------------------------------------------------------------------
# Rendering


def footnote_markers(table: Table) -> dict[str, str]:
    """Footnote text -> marker letter, in reading order (row by row); equal texts share one."""
    markers: dict[str, str] = {}
    for model in table.rows:
        for column in table.columns:
            note = table.notes.get((model, column.key))
            if note and note not in markers:
                markers[note] = _letter(len(markers))
    return markers


def _letter(i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26]


def format_cell(table: Table, model: str, column: Column) -> str:
    """The cell's text without footnote marker: "n/a", "0.82", "0.82 ± 0.10", "0.82 [0.7, 0.9]"."""
    row = table.values.loc[model]
    value = row[column.key]
    if is_missing(value):
        return NA
    d = column.digits
    text = f"{value:.{d}f}"
    if column.std and not is_missing(row[column.std]):
        text += f" ± {row[column.std]:.{d}f}"
    if column.ci and not is_missing(row[column.ci[0]]) and not is_missing(row[column.ci[1]]):
        text += f" [{row[column.ci[0]]:.{d}f}, {row[column.ci[1]]:.{d}f}]"
    return text


def render_cells(table: Table) -> tuple[list[list[str]], list[tuple[str, str]]]:
    """Cell texts (row label first) with a trailing "{marker}" placeholder for footnoted cells.

    Returns the rows and the footnotes as (marker, text). Each renderer turns `\\x00a` (NUL +
    marker) into its own superscript syntax.
    """
    markers = footnote_markers(table)
    rows = []
    for model in table.rows:
        cells = [table.row_names[model]]
        for column in table.columns:
            text = format_cell(table, model, column)
            note = table.notes.get((model, column.key))
            if note:
                text += "\x00" + markers[note]
            cells.append(text)
        rows.append(cells)
    return rows, [(m, note) for note, m in markers.items()]


def _with_markers(text: str, fmt: str) -> str:
    if "\x00" not in text:
        return text
    body, marker = text.split("\x00", 1)
    return body + fmt.format(marker)


def to_csv_frame(table: Table) -> pd.DataFrame:
    """The CSV: row label, model, every value column (NaN -> "n/a" on write), and `notes`."""
    frame = table.values.copy()
    frame.insert(0, "model", frame.index)
    frame.insert(0, table.row_header.lower(), [table.row_names[m] for m in table.rows])
    frame["notes"] = [
        "; ".join(
            f"{key}: {table.notes[(m, key)]}"
            for key in table.values.columns
            if (m, key) in table.notes
        )
        for m in table.rows
    ]
    return frame.reset_index(drop=True)


def to_markdown(table: Table) -> str:
    rows, footnotes = render_cells(table)
    header = [table.row_header] + [c.header for c in table.columns]
    lines = [f"**{md_escape(table.title)}**", ""]
    if table.label:
        lines += [f"_{md_escape(table.label)}_", ""]
    lines.append("| " + " | ".join(md_escape(h) for h in header) + " |")
    lines.append("|" + "---|" + "---:|" * len(table.columns))
    for cells in rows:
        cells = [_with_markers(md_escape(c), "<sup>{}</sup>") for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for marker, note in footnotes:
        lines.append(f"<sup>{marker}</sup> {md_escape(note)}  ")
    if footnotes:
        lines.append("")
    lines.append(md_escape(table.caption))
    return "\n".join(lines) + "\n"


def md_escape(text: str) -> str:
    return text.replace("|", "\\|")


_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "–": "--",
    "—": "---",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """A booktabs table environment; footnotes below the tabular."""
    rows, footnotes = render_cells(table)
    header = [table.row_header] + [c.header for c in table.columns]
    caption = tex_escape(table.title.split(": ", 1)[-1] + ". " + table.caption)
    if table.label:
        caption += " " + tex_escape(table.label)
    lines = [
        f"% {table.title} (stylized_dpo.report.tables; needs \\usepackage{{booktabs}})",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{caption}}}",
        rf"\label{{tab:table{table.number}}}",
        r"\begin{tabular}{l" + "r" * len(table.columns) + "}",
        r"\toprule",
        " & ".join(tex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    for cells in rows:
        cells = [_with_markers(tex_escape(c), r"\textsuperscript{{{}}}") for c in cells]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if footnotes:
        lines.append(r"\par\smallskip")
        notes = [rf"\textsuperscript{{{m}}}\,{tex_escape(n)}" for m, n in footnotes]
        lines.append(r"{\footnotesize " + r" \\ ".join(notes) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def table_figure(table: Table) -> Figure:
    """The table drawn with matplotlib: title, run label, table, footnotes, caption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, footnotes = render_cells(table)
    cells = [[_with_markers(c, " ({})") for c in r] for r in rows]
    header = [table.row_header] + [c.header for c in table.columns]
    # Width from the longest text per column (about 0.075 in per character at 9 pt).
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    col_in = [0.075 * w + 0.3 for w in widths]
    fig_w = max(6.5, sum(col_in) + 0.4)
    wrap = int(fig_w * 15)
    below = [f"({m}) {n}" for m, n in footnotes] + [table.caption]
    below_lines = sum(len(textwrap.wrap(t, wrap)) or 1 for t in below) + 1
    label_lines = len(textwrap.wrap(table.label, wrap)) if table.label else 0
    table_h = 0.3 * (len(cells) + 1)
    fig_h = 0.5 + 0.18 * label_lines + table_h + 0.17 * below_lines + 0.3
    fig = plt.figure(figsize=(fig_w, fig_h))
    top = 1 - 0.5 / fig_h
    fig.text(
        0.5, 1 - 0.25 / fig_h, table.title, ha="center", va="center", fontsize=11, weight="bold"
    )
    if table.label:
        fig.text(
            0.5,
            top,
            "\n".join(textwrap.wrap(table.label, wrap)),
            ha="center",
            va="top",
            fontsize=8,
            style="italic",
            color="#444444",
        )
        top -= (0.18 * label_lines + 0.05) / fig_h
    ax = fig.add_axes((0.2 / fig_w, top - table_h / fig_h, 1 - 0.4 / fig_w, table_h / fig_h))
    ax.axis("off")
    total = sum(col_in)
    mpl_table = ax.table(
        cellText=cells,
        colLabels=header,
        colWidths=[w / total for w in col_in],
        cellLoc="right",
        colLoc="center",
        loc="upper center",
        bbox=(0, 0, 1, 1),
    )
    mpl_table.auto_set_font_size(False)
    mpl_table.set_fontsize(9)
    for (r, c), cell in mpl_table.get_celld().items():
        cell.set_edgecolor("#bbbbbb")
        if r == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#eeeeee")
        if c == 0:
            cell.set_text_props(ha="left")
            cell.PAD = 0.02
    y = top - table_h / fig_h - 0.12 / fig_h
    text = "\n".join("\n".join(textwrap.wrap(t, wrap)) for t in below[:-1])
    text += ("\n\n" if footnotes else "") + "\n".join(textwrap.wrap(below[-1], wrap))
    fig.text(0.2 / fig_w, y, text, ha="left", va="top", fontsize=7.5, color="#222222")
    return fig


def to_pdf(table: Table, path: PathLike) -> None:
    """Write the table as a vector PDF."""
    import matplotlib.pyplot as plt

    fig = table_figure(table)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="pdf")
    plt.close(fig)


def write_text(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def write_table(
    table: Table,
    *,
    csv: PathLike,
    tex: PathLike | None = None,
    md: PathLike | None = None,
    pdf: PathLike | None = None,
) -> None:
    """Write the CSV (missing values as "n/a") and whichever renderings are asked for."""
    with atomic_path(csv) as tmp:
        to_csv_frame(table).to_csv(tmp, index=False, na_rep=NA, float_format="%.6g")
    if tex is not None:
        write_text(tex, to_latex(table))
    if md is not None:
        write_text(md, to_markdown(table))
    if pdf is not None:
        to_pdf(table, pdf)


def read_table_csv(path: PathLike) -> pd.DataFrame:
    """Read a table CSV back with "n/a" as NaN (for comparisons and the reproduction table)."""
    return pd.read_csv(path, na_values=[NA], keep_default_na=False)
