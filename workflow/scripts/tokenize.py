"""Snakemake script: tokenise and length-filter one SFT or preference split into a shard."""

import sys

from stylized_dpo.model import load_tokenizer
from stylized_dpo.train.shards import write_shard

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params = snakemake.params
write_shard(
    params.kind,
    snakemake.input.examples,
    load_tokenizer(snakemake.input.tokenizer),
    snakemake.output.tokens,
    snakemake.output.card,
    params.max_prompt_tokens,
    params.max_completion_tokens,
)
