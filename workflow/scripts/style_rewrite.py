"""Snakemake script: rewrite one split's chosen answers in one style (resumable)."""

import dataclasses
import sys

from stylized_dpo.synth.backends import SynthConfig
from stylized_dpo.synth.rewrite import rewrite_prefs
from stylized_dpo.synth.styles import load_style
from stylized_dpo.train.shards import shard_ids

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params = snakemake.params
cfg = SynthConfig.from_config(params.synth, seed=params.seed)
gpus = int(snakemake.resources.get("gpu", 0) or 0)
if cfg.backend == "vllm" and gpus >= 1:  # the job's GPUs: the tensor parallelism compute.smk chose
    cfg = dataclasses.replace(cfg, vllm=dataclasses.replace(cfg.vllm, tensor_parallel_size=gpus))
rewrite_prefs(
    pairs_path=snakemake.input.pairs,
    style=load_style(snakemake.input.style),
    cfg=cfg,
    out_path=snakemake.output.pairs,
    cache_path=params.cache,
    card_path=snakemake.output.card,
    keep_ids=shard_ids(snakemake.input.shard),
)
