"""Snakemake script: the paper's Figure 2 (validation loss and reward accuracy of DPO runs)."""

import sys

from stylized_dpo.report.figures import figure2

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params = snakemake.params
counts = figure2(
    dict(zip(params.runs, snakemake.input.metrics, strict=True)),
    snakemake.output.pdf,
    snakemake.output.png,
    styles=params.styles,
    label=params.label,
)
print("figure 2: evaluation points per run:", counts)
