"""Snakemake script: each model's headline numbers across seeds (a dot per seed, the mean and
its 95% t-interval)."""

import sys

from stylized_dpo.report.seeds_figure import figure_seeds, seed_points

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params, inputs, out = snakemake.params, snakemake.input, snakemake.output
seeds = params.seeds
points = seed_points(
    dict(zip(seeds, inputs.judge_summary, strict=True)),
    dict(zip(seeds, inputs.table3, strict=True)),
    dict(zip(seeds, inputs.table4, strict=True)),
    styles=params.styles,
    base_name=params.base_name,
)
figure_seeds(
    points, out.pdf, out.png, styles=params.styles, base_name=params.base_name, label=params.label
)
n_values, n_panels = int(points["value"].notna().sum()), points["panel"].nunique()
print(f"{n_values} values over seeds {seeds} in {n_panels} panels")
