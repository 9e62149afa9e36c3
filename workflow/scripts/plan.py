"""Snakemake script: print the run's plan (tokens, GPU hours, API dollars) and log it."""

from pathlib import Path

from stylized_dpo.plan import build_plan, format_plan

snakemake = globals()["snakemake"]  # injected by Snakemake's `script:` directive
cfg = snakemake.params.config
stages, gpu_type = build_plan(
    cfg,
    models=snakemake.params.models,
    pref_datasets=snakemake.params.pref_datasets,
    styles=snakemake.params.styles,
    judge_template=Path(cfg["judge"]["prompt"]).read_text(),
    job_gpus=snakemake.params.job_gpus,
)
text = format_plan(stages, gpu_type, snakemake.params.runtime_min)
print(text, flush=True)
Path(snakemake.log[0]).write_text(text + "\n")
