"""Snakemake script: pretrain the tiny base model on the world corpus."""

import sys

from stylized_dpo.train.launch import train_stage, workflow_checkpoints

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params = snakemake.params
kwargs = dict(
    corpus_path=snakemake.input.corpus,
    tokenizer_dir=snakemake.input.tokenizer,
    out_dir=snakemake.output.model,
    metrics_path=snakemake.output.metrics,
    **workflow_checkpoints(snakemake.config, snakemake.wildcards.seeddir + "base"),
    architecture=dict(params.architecture),
    config={**params.pretrain, "seed": params.seed},
)
gpus = int(snakemake.resources.get("gpu", 0) or 0)
train_stage("pretrain", kwargs, gpus, snakemake.threads)  # torchrun DDP when gpus > 1
