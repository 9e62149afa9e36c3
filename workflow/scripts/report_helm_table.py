"""Snakemake script: one of the paper's HELM tables (4: mean win rates; 5-8: one family each)."""

import sys

from stylized_dpo.report.paper_tables import build_helm_table
from stylized_dpo.report.tables import write_table

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params, out = snakemake.params, snakemake.output
table = build_helm_table(
    params.number,
    snakemake.input.summary,
    styles=params.styles,
    base_name=params.base_name,
    scenarios=params.scenarios,
    label=params.label,
)
write_table(table, csv=out.csv, tex=out.tex, md=out.md, pdf=out.pdf)
print(f"table {params.number}: {len(table.rows)} rows, {len(table.notes)} footnoted cells")
