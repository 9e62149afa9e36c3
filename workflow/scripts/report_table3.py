"""Snakemake script: the paper's Table 3 (training metrics and win rate against the base)."""

import sys

from stylized_dpo.report.paper_tables import build_table3
from stylized_dpo.report.tables import write_table

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params, out = snakemake.params, snakemake.output
table = build_table3(
    dict(zip(params.runs, snakemake.input.metrics, strict=True)),
    snakemake.input.win_rates,
    styles=params.styles,
    base_name=params.base_name,
    baseline=params.baseline,
    label=params.label,
)
write_table(table, csv=out.csv, tex=out.tex, md=out.md, pdf=out.pdf)
print(f"table 3: {len(table.rows)} rows, {len(table.notes)} footnoted cells")
