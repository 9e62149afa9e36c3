"""Snakemake script: win rate of each model against the baseline, and answer lengths."""

import sys

from stylized_dpo.report.more_figures import figure_win_rates

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params = snakemake.params
data = figure_win_rates(
    snakemake.input.win_rates,
    snakemake.output.pdf,
    snakemake.output.png,
    styles=params.styles,
    base_name=params.base_name,
    baseline=params.baseline,
    label=params.label,
)
print(data.to_string(index=False))
