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
    config=SamplingConfig.from_dict(
        # vLLM shards the model over the job's GPUs (the parallelism compute.smk chose)
        {
            **snakemake.params.sampling,
            "vllm_tensor_parallel_size": max(1, int(snakemake.resources.get("gpu", 0) or 0)),
        }
    ),
)
