"""Snakemake script: paired comparisons between models (Holm-corrected) and the paper's claims."""

import csv
import sys

from stylized_dpo.evals.claims import claim_status, load_claims
from stylized_dpo.evals.helm import SUITE
from stylized_dpo.evals.helm_cells import read_suite
from stylized_dpo.evals.significance import SignificanceConfig, significance_table
from stylized_dpo.report.statistics import figure_claims, write_claims, write_significance

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params, inputs, output = snakemake.params, snakemake.input, snakemake.output
config = SignificanceConfig.from_dict(dict(params.statistics))
with open(inputs.helm_summary, encoding="utf-8", newline="") as f:
    summary_rows = list(csv.DictReader(f))
suite = read_suite(f"{inputs.helm}/benchmark_output/runs/{SUITE}", params.models, params.scenarios)
table = significance_table(params.models, inputs.judge, suite, summary_rows, config, params.seed)
write_significance(
    table, output.csv, output.md, output.tex, base_name=params.base_name, label=params.label
)
claims = claim_status(table, load_claims(inputs.claims), config.alpha)
write_claims(
    claims, output.claims_csv, output.claims_md, base_name=params.base_name, label=params.label
)
figure_claims(
    claims,
    output.claims_pdf,
    output.claims_png,
    base_name=params.base_name,
    alpha=config.alpha,
    label=params.label,
)
print(f"{len(table)} comparisons, {int(table['significant'].sum())} significant after Holm")
print(claims[["id", "difference", "p_holm", "status"]].to_string(index=False))
