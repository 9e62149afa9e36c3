"""Snakemake script: supervised fine-tuning of the base model."""

import sys

import torch

from stylized_dpo.train.distributed import run_torchrun
from stylized_dpo.train.sft import SFTConfig, train_sft

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
torch.set_num_threads(snakemake.threads)
params = snakemake.params
kwargs = dict(
    model_dir=snakemake.input.model,
    train_path=snakemake.input.train,
    test_path=snakemake.input.test,
    out_dir=snakemake.output.model,
    metrics_path=snakemake.output.metrics,
    checkpoint_dir=params.checkpoint_dir,
    config={**params.sft, "seed": params.seed},
)
gpus = int(snakemake.resources.get("gpu", 0) or 0)
if gpus > 1:  # DDP over the job's GPUs (config compute.gpus), through torchrun
    run_torchrun("sft", kwargs, gpus, threads=max(1, snakemake.threads // gpus))
else:
    train_sft(**kwargs | {"config": SFTConfig.from_dict(kwargs["config"])})
