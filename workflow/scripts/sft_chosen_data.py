"""Snakemake script: UltraFeedback's chosen answers as SFT examples (the paper's limitation 1)."""

import sys

from stylized_dpo.data_prepare import chosen_as_sft

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
chosen_as_sft(snakemake.input.pairs, snakemake.output.examples)
