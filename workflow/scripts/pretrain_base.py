"""Snakemake script: train the tokenizer and pretrain the tiny base model on the world corpus."""

import sys

import torch

from stylized_dpo.train.pretrain import PretrainConfig, pretrain_base

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
torch.set_num_threads(snakemake.threads)
params = snakemake.params
pretrain_base(
    corpus_path=snakemake.input.corpus,
    chats_path=snakemake.input.chats,
    out_dir=snakemake.output.model,
    metrics_path=snakemake.output.metrics,
    checkpoint_dir=params.checkpoint_dir,
    vocab_size=params.tokenizer["vocab_size"],
    architecture=dict(params.architecture),
    config=PretrainConfig.from_dict({**params.pretrain, "seed": params.seed}),
)
