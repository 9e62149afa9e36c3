"""Snakemake script: each measured cell of Tables 3-8 beside the paper's published value."""

import sys

from stylized_dpo.report.reproduction import (
    reproduction_figure,
    reproduction_frame,
    write_reproduction_csv,
)

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
params, out = snakemake.params, snakemake.output
frame = reproduction_frame(
    dict(zip(params.numbers, snakemake.input.tables, strict=True)),
    snakemake.input.paper,
    comparison=params.comparison,
)
write_reproduction_csv(frame, out.csv)
drawn = reproduction_figure(frame, out.pdf, out.png, styles=params.styles, label=params.label)
print(f"{params.comparison}: cells drawn per table: {drawn} of {len(frame)} published cells")
