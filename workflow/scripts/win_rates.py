"""Snakemake script: win rate of every model against the baseline (paper Table 3)."""

import sys

import torch

from stylized_dpo.evals.winrate import WinRateConfig, compute_win_rates

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
torch.set_num_threads(snakemake.threads)
inputs = snakemake.input
table = compute_win_rates(
    models=snakemake.params.models,
    generation_paths=inputs.generations,
    out_path=snakemake.output.csv,
    config=WinRateConfig.from_dict(dict(snakemake.params.win_rates)),
    seed=snakemake.params.seed,
    prompts_path=inputs.get("prompts"),
    world_path=inputs.get("world"),
    run_path=snakemake.output.run,
)
print(table.to_string(index=False))
