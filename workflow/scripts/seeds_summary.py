"""Snakemake script: every per-seed table value across seeds, with mean and 95% t-interval."""

import sys

from stylized_dpo.report.seeds import write_seeds_summary

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
seeds, sources = snakemake.params.seeds, snakemake.params.sources
tables = list(snakemake.input.tables)
assert len(tables) == len(seeds) * len(sources), "one file per seed and source"
paths = {
    seed: dict(zip(sources, tables[i * len(sources) : (i + 1) * len(sources)], strict=True))
    for i, seed in enumerate(seeds)
}
summary = write_seeds_summary(
    paths, snakemake.output.csv, snakemake.output.md, snakemake.params.label
)
n_intervals = int(summary["ci_low"].notna().sum())
print(f"{len(summary)} values over seeds {seeds}, {n_intervals} with an interval")
