"""Snakemake script: train the tokenizer and pretrain the tiny base model on the world corpus."""

import sys

import torch

from stylized_dpo.train.distributed import run_torchrun
from stylized_dpo.train.pretrain import PretrainConfig, pretrain_base

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
torch.set_num_threads(snakemake.threads)
params = snakemake.params
kwargs = dict(
    corpus_path=snakemake.input.corpus,
    chats_path=snakemake.input.chats,
    out_dir=snakemake.output.model,
    metrics_path=snakemake.output.metrics,
    checkpoint_dir=params.checkpoint_dir,
    vocab_size=params.tokenizer["vocab_size"],
    architecture=dict(params.architecture),
    config={**params.pretrain, "seed": params.seed},
)
gpus = int(snakemake.resources.get("gpu", 0) or 0)
if gpus > 1:  # DDP over the job's GPUs (config compute.gpus), through torchrun
    run_torchrun("pretrain", kwargs, gpus, threads=max(1, snakemake.threads // gpus))
else:
    pretrain_base(**kwargs | {"config": PretrainConfig.from_dict(kwargs["config"])})
