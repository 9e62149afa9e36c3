"""Snakemake script: the paper's Figure 3 (LLM-judge scores per model and criterion)."""

import sys

from stylized_dpo.report.figures import figure3

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params = snakemake.params
drawn = figure3(
    snakemake.input.summary,
    snakemake.output.pdf,
    snakemake.output.png,
    styles=params.styles,
    base_name=params.base_name,
    label=params.label,
)
print("figure 3: models drawn:", ", ".join(drawn))
