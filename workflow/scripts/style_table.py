"""Snakemake script: stylometric measures of every preference set and split."""

import sys

from stylized_dpo.synth.table import write_style_table

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params = snakemake.params
files = {
    (dataset, split): f"results/data/prefs/{dataset}/{split}.jsonl"
    for dataset in params.datasets
    for split in params.splits
}
missing = sorted(set(map(str, files.values())) - set(map(str, snakemake.input)))
if missing:
    raise ValueError(f"inputs and params disagree: {missing}")
write_style_table(files, snakemake.output[0])
