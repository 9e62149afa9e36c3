"""Snakemake script: style measures of each model's answers beside those of its training data."""

import sys

from stylized_dpo.report.more_figures import figure_style

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params = snakemake.params
data = figure_style(
    snakemake.input.generations,
    snakemake.input.prefs,
    snakemake.output.pdf,
    snakemake.output.png,
    styles=params.styles,
    base_name=params.base_name,
    label=params.label,
)
print("style figure: bars per measure:", {m: len(bars) for m, bars in data.items()})
