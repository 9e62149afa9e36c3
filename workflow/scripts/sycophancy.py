"""Snakemake script: the sycophancy probe (answer, pushback, answer again) for one model."""

import sys

import torch

from stylized_dpo.evals.sycophancy import SycophancyConfig, probe_model

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
torch.set_num_threads(snakemake.threads)
probe_model(
    model_dir=snakemake.input.model,
    model=snakemake.wildcards.model,
    out_path=snakemake.output[0],
    config=SycophancyConfig.from_dict(dict(snakemake.params.sycophancy)),
    generation=dict(snakemake.params.generation),
    seed=snakemake.params.seed,
    world_path=snakemake.input.get("world"),
)
