"""Snakemake script: DPO of the SFT model on one preference dataset."""

import sys

import torch

from stylized_dpo.train.distributed import run_torchrun
from stylized_dpo.train.dpo import DPOConfig, train_dpo

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
torch.set_num_threads(snakemake.threads)
inputs = snakemake.input
kwargs = dict(
    model_dir=inputs.model,
    train_path=inputs.train,
    test_path=inputs.test,
    out_dir=snakemake.output.model,
    metrics_path=snakemake.output.metrics,
    checkpoint_dir=snakemake.params.checkpoint_dir,
    config=dict(snakemake.params.dpo),
    ref_train_path=inputs.get("ref_train"),
    ref_test_path=inputs.get("ref_test"),
)
gpus = int(snakemake.resources.get("gpu", 0) or 0)
if gpus > 1:  # DDP over the job's GPUs (config compute.gpus), through torchrun
    run_torchrun("dpo", kwargs, gpus, threads=max(1, snakemake.threads // gpus))
else:
    train_dpo(**kwargs | {"config": DPOConfig.from_dict(kwargs["config"])})
