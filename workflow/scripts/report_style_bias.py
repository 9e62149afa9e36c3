"""Snakemake script: the style-bias table (csv, md, tex) and figure."""

import sys

import pandas as pd

from stylized_dpo.report.common import model_colors
from stylized_dpo.report.style_bias import figure_style_bias, write_style_bias

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params, output = snakemake.params, snakemake.output
table = pd.read_csv(snakemake.input.csv)
write_style_bias(table, output.csv, output.md, output.tex, label=params.label)
colors = {s: model_colors(params.styles)[f"dpo-{s}"] for s in params.styles}
figure_style_bias(
    table, output.pdf, output.png, styles=params.styles, colors=colors, label=params.label
)
print(f"style bias: {len(table)} rows drawn")
