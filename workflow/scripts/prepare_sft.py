"""Snakemake script: SFT chats (smol-smoltalk schema) -> validated SFTExamples + data card."""

import sys

from stylized_dpo.data import DataSourceConfig
from stylized_dpo.data_prepare import prepare

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
out = snakemake.output
prepare(
    "sft",
    DataSourceConfig(**snakemake.params.source),
    {"train": out.train, "test": out.test},
    out.card,
    out.card_md,
    dataset="sft",
)
