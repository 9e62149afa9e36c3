"""Snakemake script: drop the tone-agnostic prompts of one preference split (limitation 3)."""

import sys

from stylized_dpo.tone_filter import filter_tone_agnostic

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
filter_tone_agnostic(
    snakemake.input.pairs, snakemake.input.patterns, snakemake.output.pairs, snakemake.output.card
)
