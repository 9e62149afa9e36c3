"""Names, order and colours shared by every table and figure, and the label of a run.

Model names are the workflow's (`base`, `sft`, `dpo-<dataset>`); the paper's tables show them as
"Qwen 2.5 0.5B", "SFT", "Ultrafeedback" and "Ultrafeedback <style>". One colour per model is
used in every figure, so a reader can follow a model from Figure 2 to Figure 3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

UNSTYLED = "ultrafeedback"
"""The preference dataset that is not a style rewrite."""

# Okabe-Ito colour-blind-safe palette. base and sft are neutral (grey, black), plain DPO is blue,
# styles take the remaining hues in config order.
BASE_COLOR = "#8c8c8c"
SFT_COLOR = "#333333"
UNSTYLED_COLOR = "#0072B2"
STYLE_COLORS: tuple[str, ...] = (
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
)

SCENARIO_NAMES: dict[str, str] = {
    "mean_win_rate": "Mean Win Rate",
    "mmlu": "MMLU",
    "boolq": "BoolQ",
    "natural_qa": "NaturalQuestions",
    "quac": "QuAC",
    "hellaswag": "HellaSwag",
}
"""HELM scenario names as the paper's Tables 5-8 print them."""


def model_order(styles: Sequence[str]) -> list[str]:
    """All models in the paper's row order: base, SFT, plain DPO, then one DPO run per style."""
    return ["base", "sft", f"dpo-{UNSTYLED}"] + [f"dpo-{s}" for s in styles]


def dpo_models(styles: Sequence[str]) -> list[str]:
    return [f"dpo-{UNSTYLED}"] + [f"dpo-{s}" for s in styles]


def display_name(model: str, base_name: str) -> str:
    """The paper's row label for a workflow model name."""
    if model == "base":
        return base_name
    if model == "sft":
        return "SFT"
    if model == f"dpo-{UNSTYLED}":
        return "Ultrafeedback"
    if model.startswith("dpo-"):
        return f"Ultrafeedback {model.removeprefix('dpo-')}"
    raise ValueError(f"unknown model name {model!r} (expected base, sft or dpo-<dataset>)")


def model_colors(styles: Sequence[str]) -> dict[str, str]:
    """One colour per model, stable for a given style list (styles coloured in config order)."""
    if len(styles) > len(STYLE_COLORS):
        raise ValueError(
            f"{len(styles)} styles but only {len(STYLE_COLORS)} distinct style colours; "
            "add colours to stylized_dpo.report.common.STYLE_COLORS"
        )
    colors = {"base": BASE_COLOR, "sft": SFT_COLOR, f"dpo-{UNSTYLED}": UNSTYLED_COLOR}
    colors.update({f"dpo-{s}": c for s, c in zip(styles, STYLE_COLORS, strict=False)})
    return colors


def run_label(config: Mapping[str, Any]) -> str:
    """A line saying what kind of run produced the results ("" for a full study run).

    `report.label` in the config wins; otherwise a run whose base model is pretrained here
    (`base_model.source: pretrain`, the embedded default) is labelled a miniature with stand-ins.
    """
    label = (config.get("report") or {}).get("label")
    if label:
        return str(label)
    if (config.get("base_model") or {}).get("source") == "pretrain":
        backends = [
            f"style rewriter: {config.get('synth', {}).get('backend', '?')}",
            f"judge: {config.get('judge', {}).get('backend', '?')}",
            f"win rates: {config.get('win_rates', {}).get('backend', '?')}",
        ]
        return (
            "Embedded default: a miniature of the study (tiny model pretrained on a fictional "
            "world, offline stand-in backends; " + ", ".join(backends) + "). Not the paper's "
            "models or data."
        )
    return ""


def comparison_kind(config: Mapping[str, Any]) -> str:
    """`miniature` for the embedded default (base pretrained here), else `reproduction`.

    `report.comparison` in the config overrides it (e.g. a hub model on a subset of the data).
    """
    kind = (config.get("report") or {}).get("comparison")
    if kind:
        if kind not in ("miniature", "reproduction"):
            raise ValueError(f"report.comparison must be miniature or reproduction, got {kind!r}")
        return str(kind)
    source = (config.get("base_model") or {}).get("source")
    return "miniature" if source == "pretrain" else "reproduction"


TABLE_NUMBERS: tuple[int, ...] = (3, 4, 5, 6, 7, 8)
"""The paper's tables built by rules/report.smk."""
