"""Snakemake script: the five HELM scenarios' local data files from the tiny world."""

import sys

from stylized_dpo.world.facts import World
from stylized_dpo.world.helm_data import write_helm_scenarios

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
card = write_helm_scenarios(
    World.load(snakemake.input.world),
    snakemake.output.data,
    n_instances=snakemake.params.n_instances,
    seed=snakemake.params.seed,
    mmlu_subjects=snakemake.params.mmlu_subjects,
)
print({k: v for k, v in card.items() if k != "eval_countries"})
