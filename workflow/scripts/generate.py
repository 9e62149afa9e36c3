"""Snakemake script: one model answers the evaluation prompts."""

import sys

import torch

from stylized_dpo.evals.generate import SamplingConfig, generate_answers

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
torch.set_num_threads(snakemake.threads)
generate_answers(
    model_dir=snakemake.input.model,
    prompts_path=snakemake.input.prompts,
    out_path=snakemake.output[0],
    model_name=snakemake.wildcards.model,
    config=SamplingConfig.from_dict(dict(snakemake.params.sampling)),
)
