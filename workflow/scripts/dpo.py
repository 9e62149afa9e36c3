"""Snakemake script: DPO of the SFT model on one preference dataset."""

import sys

from stylized_dpo.train.launch import train_stage, workflow_checkpoints

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
inputs = snakemake.input
wildcards = snakemake.wildcards  # seeddir: "" or "seeds/<s>/", each seed its own checkpoints
kwargs = dict(
    model_dir=inputs.model,
    train_path=inputs.train,
    test_path=inputs.test,
    out_dir=snakemake.output.model,
    metrics_path=snakemake.output.metrics,
    **workflow_checkpoints(snakemake.config, wildcards.seeddir + wildcards.dpo_model),
    config=dict(snakemake.params.dpo),
    ref_train_path=inputs.get("ref_train"),
    ref_test_path=inputs.get("ref_test"),
)
gpus = int(snakemake.resources.get("gpu", 0) or 0)
train_stage("dpo", kwargs, gpus, snakemake.threads)  # torchrun DDP when gpus > 1
