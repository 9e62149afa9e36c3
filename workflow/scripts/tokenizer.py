"""Snakemake script: the base model's tokenizer (trained on the world, or the hub model's)."""

import sys

from stylized_dpo.model import build_tokenizer

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
inputs = snakemake.input
tokenizer = build_tokenizer(
    out_dir=snakemake.output.tokenizer,
    corpus_path=inputs.get("corpus"),
    chats_path=inputs.get("chats"),
    chat_template_path=inputs.get("chat_template"),
    **snakemake.params.spec,
)
print(f"tokenizer: {len(tokenizer)} tokens, saved to {snakemake.output.tokenizer}")
