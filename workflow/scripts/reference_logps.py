"""Snakemake script: reference log-probs of one preference split under the SFT model."""

import sys

import torch

from stylized_dpo.train.dpo import DPOConfig
from stylized_dpo.train.reference import reference_logps_file

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
torch.set_num_threads(snakemake.threads)
# the same length filters as the DPO job; the other DPO values keep their defaults
cfg = DPOConfig.from_dict(snakemake.params.dpo)
reference_logps_file(
    model_dir=snakemake.input.model,
    pairs_path=snakemake.input.pairs,
    out_path=snakemake.output.logps,
    batch_size=cfg.batch_size,
    max_prompt_tokens=cfg.max_prompt_tokens,
    max_completion_tokens=cfg.max_completion_tokens,
    device=cfg.device,
    prefix_sharing=cfg.prefix_sharing,
    cache_dir=snakemake.params.cache,
)
