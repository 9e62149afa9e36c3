"""Snakemake script: rewrite one split's chosen answers in one style (resumable)."""

import sys

from stylized_dpo.synth.backends import SynthConfig
from stylized_dpo.synth.rewrite import rewrite_prefs
from stylized_dpo.synth.styles import load_style

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params = snakemake.params
rewrite_prefs(
    pairs_path=snakemake.input.pairs,
    style=load_style(snakemake.input.style),
    cfg=SynthConfig.from_config(params.synth, seed=params.seed),
    out_path=snakemake.output.pairs,
    cache_path=params.cache,
    card_path=snakemake.output.card,
)
