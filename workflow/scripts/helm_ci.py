"""Snakemake script: the cells of Tables 4-8 with their bootstrap intervals (companion CSV)."""

import sys

from stylized_dpo.report.statistics import write_helm_ci

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
table = write_helm_ci(snakemake.input.summary, snakemake.output.csv, snakemake.params.models)
print(f"{len(table)} cells, {int(table['ci_low'].notna().sum())} with an interval")
