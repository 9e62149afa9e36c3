"""Snakemake script: every seed's paired comparisons and claims side by side, with the
verdict across seeds, and the claims-across-seeds figure."""

import sys

from stylized_dpo.report.seeds_claims import (
    HOLDS,
    claims_across_seeds,
    read_claims,
    read_significance,
    significance_across_seeds,
    write_claims_seeds,
    write_significance_seeds,
)
from stylized_dpo.report.seeds_figure import figure_claims_seeds

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params, inputs, out = snakemake.params, snakemake.input, snakemake.output
names = dict(base_name=params.base_name, label=params.label)
seeds = params.seeds
table = significance_across_seeds(
    {s: read_significance(p) for s, p in zip(seeds, inputs.significance, strict=True)}
)
write_significance_seeds(table, out.csv, out.md, out.tex, **names)
claims = claims_across_seeds({s: read_claims(p) for s, p in zip(seeds, inputs.claims, strict=True)})
write_claims_seeds(claims, out.claims_csv, out.claims_md, **names)
figure_claims_seeds(claims, out.claims_pdf, out.claims_png, **names)
print(f"{len(table)} comparisons over seeds {seeds}")
print(f"{int((claims['overall'] == HOLDS).sum())} of {len(claims)} claims hold in all seeds")
print(claims[["id", *(c for c in claims if c.startswith("status_")), "overall"]].to_string())
