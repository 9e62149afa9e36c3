"""Snakemake script: generate the tiny world and write its datasets."""

import sys

from stylized_dpo.world.build import WorldConfig, build_world

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params = snakemake.params
counts = build_world(
    WorldConfig.from_dict({**params.world, "seed": params.seed}),
    list(params.styles),
    params.out_dir,
)
print(counts)
