"""Snakemake script: supervised fine-tuning of the base model."""

import sys

from stylized_dpo.train.launch import train_stage, workflow_checkpoints

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params = snakemake.params
wildcards = snakemake.wildcards  # seeddir: "" or "seeds/<s>/", each seed its own checkpoints
kwargs = dict(
    model_dir=snakemake.input.model,
    train_path=snakemake.input.train,
    test_path=snakemake.input.test,
    out_dir=snakemake.output.model,
    metrics_path=snakemake.output.metrics,
    **workflow_checkpoints(snakemake.config, wildcards.seeddir + wildcards.sft_model),
    config=dict(params.sft),
)
gpus = int(snakemake.resources.get("gpu", 0) or 0)
train_stage("sft", kwargs, gpus, snakemake.threads)  # torchrun DDP when gpus > 1
