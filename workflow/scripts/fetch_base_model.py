"""Snakemake script: download the hub base model (e.g. Qwen/Qwen2.5-0.5B) and save it locally."""

import sys

from stylized_dpo.model import fetch_base_model

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
fetch_base_model(
    snakemake.params.name,
    snakemake.output.model,
    snakemake.input.tokenizer,
    snakemake.params.revision,
)
