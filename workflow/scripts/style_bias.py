"""Snakemake script: style-bias audit (rewrite vs original chosen answer, judge and reward)."""

import sys

import torch

from stylized_dpo.evals.judge import JudgeConfig
from stylized_dpo.evals.style_bias import StyleBiasConfig, style_bias
from stylized_dpo.evals.winrate import WinRateConfig

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
torch.set_num_threads(snakemake.threads)
params, inputs = snakemake.params, snakemake.input
table = style_bias(
    styles=params.styles,
    pref_paths=inputs.prefs,
    out_path=snakemake.output.csv,
    judge=JudgeConfig.from_dict(dict(params.judge)),
    win_rates=WinRateConfig.from_dict(dict(params.win_rates)),
    config=StyleBiasConfig.from_dict(dict(params.style_bias)),
    seed=params.seed,
    n_bootstrap=params.statistics["n_bootstrap"],
    n_permutations=params.statistics["n_permutations"],
    world_path=inputs.get("world"),
    judge_template=inputs.get("template"),
    run_path=snakemake.output.run,
)
print(table.to_string(index=False))
