"""Snakemake script: one of the paper's Tables 3-8 across seeds (mean and 95% t-interval)."""

import sys

from stylized_dpo.report.paper_tables import build_helm_table, build_table3
from stylized_dpo.report.seeds import table_across_seeds
from stylized_dpo.report.tables import write_table

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params, inputs, out = snakemake.params, snakemake.input, snakemake.output
names = dict(styles=params.styles, base_name=params.base_name)
if params.number == 3:
    runs = params.runs
    metrics = list(inputs.metrics)  # seed by seed, each seed's runs in order
    assert len(metrics) == len(params.seeds) * len(runs), "one file per seed and run"
    tables = {
        seed: build_table3(
            dict(zip(runs, metrics[i * len(runs) : (i + 1) * len(runs)], strict=True)),
            inputs.win_rates[i],
            baseline=params.baseline,
            **names,
        )
        for i, seed in enumerate(params.seeds)
    }
else:
    tables = {
        seed: build_helm_table(params.number, summary, scenarios=params.scenarios, **names)
        for seed, summary in zip(params.seeds, inputs.summary, strict=True)
    }
table = table_across_seeds(tables, params.label)
write_table(table, csv=out.csv, tex=out.tex, md=out.md, pdf=out.pdf)
print(f"table {params.number} across seeds {params.seeds}: {len(table.rows)} rows")
