"""What every report figure shares: writing PDF + PNG, the run label under the legend, the
axes' tidy look, the legend below the axes, and the "n/a" mark of a missing value."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.artist import Artist  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from stylized_dpo.io import atomic_path  # noqa: E402
from stylized_dpo.report.common import model_order  # noqa: E402
from stylized_dpo.report.inputs import PathLike  # noqa: E402

PNG_DPI = 200

NA_TEXT = dict(ha="center", va="bottom", fontsize=7, color="#555555", rotation=90)
"""Text style of the "n/a" mark where a bar or point has no value."""


def save_figure(fig: Figure, pdf: PathLike, png: PathLike) -> None:
    """Write the figure as a vector PDF and a PNG (PNG_DPI), atomically."""
    with atomic_path(pdf) as tmp:
        fig.savefig(tmp, format="pdf", bbox_inches="tight")
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=PNG_DPI, bbox_inches="tight")


def label_below(
    fig: Figure, artist: Artist, label: str, width: int = 130, gap: float = 0.02
) -> None:
    """Write the run label under `artist` (a legend below the axes), wrapped at `width`
    characters, `gap` (figure fraction) below it; tight bbox keeps it in."""
    if not label:
        return
    fig.draw_without_rendering()
    box = artist.get_window_extent().transformed(fig.transFigure.inverted())
    fig.text(
        0.5,
        box.y0 - gap,
        "\n".join(textwrap.wrap(label, width)),
        ha="center",
        va="top",
        fontsize=7.5,
        style="italic",
        color="#444444",
    )


class _AxesBottom:
    """The lowest edge of a figure's axes (tick labels included), for `label_below`."""

    def __init__(self, fig: Figure) -> None:
        self.fig = fig

    def get_window_extent(self, renderer=None):
        from matplotlib.transforms import Bbox

        boxes = [ax.get_tightbbox() for ax in self.fig.axes if ax.get_visible()]
        return Bbox.union([b for b in boxes if b is not None])


def write_figure(fig: Figure, label: str, pdf: PathLike, png: PathLike) -> None:
    """Run label under the legend (or under the axes when there is none); PDF + PNG; close."""
    anchor = fig.legends[-1] if fig.legends else _AxesBottom(fig)
    label_below(fig, anchor, label)  # type: ignore[arg-type]
    save_figure(fig, pdf, png)
    plt.close(fig)


def known_models(frame: pd.DataFrame, styles: Sequence[str], what: str) -> list[str]:
    """The config's models in order; reports models in the file that the config does not list."""
    models = model_order(styles)
    extra = sorted(set(frame["model"]) - set(models))
    if extra:
        print(f"{what}: left out {len(extra)} model(s) not in the config: {', '.join(extra)}")
    return models


def model_value(frame: pd.DataFrame, model: str, column: str) -> float:
    """`column` of the model's row, NaN when the frame has none."""
    rows = frame[frame["model"] == model]
    return float(rows[column].iloc[0]) if len(rows) else math.nan


def tidy(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def legend_below(fig: Figure, handles: list, ncol: int) -> None:
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=ncol,
        bbox_to_anchor=(0.5, 0.0),
        frameon=False,
        fontsize=9,
    )
