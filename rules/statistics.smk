# Beyond the paper: which differences between models are real (paired tests, Holm), intervals
# beside Tables 4-8, and whether the judge and the reward model themselves reward a style
# (each style set's rewrite against its original chosen answer). HELM's intervals over
# instances are added to results/helm/summary.csv by the helm_summarize rule.

STYLE_BIAS_INPUTS = {
    "prefs": expand(
        "results/data/prefs/{style}/{split}.jsonl",
        style=STYLES,
        split=config["style_bias"]["split"],
    ),
    **(
        {"world": "results/world/world.json"}
        if "reference" in (JUDGE_BACKEND, WIN_RATE_BACKEND)
        else {}
    ),
    **({"template": JUDGE.prompt} if JUDGE_BACKEND == "openai" else {}),
    **(
        {"pairwise_template": WIN_RATE_EXTRA_INPUTS["template"]}
        if WIN_RATE_BACKEND == "pairwise_judge"
        else {}
    ),
}


rule significance:
    input:
        judge=expand(
            per_seed("results/judge/{model}.jsonl"),
            model=HELM_SUITES[""],
            allow_missing=True,
        ),
        helm_summary=per_seed("results/helm/summary.csv"),
        helm=per_seed("results/helm/summarize"),
        claims=config["statistics"]["claims"],
    output:
        csv=per_seed("results/tables/significance.csv"),
        md=per_seed("results/tables/significance.md"),
        tex=per_seed("results/tables/significance.tex"),
        claims_csv=per_seed("results/tables/claims.csv"),
        claims_md=per_seed("results/tables/claims.md"),
        claims_pdf=per_seed("results/figures/claims.pdf"),
        claims_png=report(
            per_seed("results/figures/claims.png"),
            caption="../workflow/report/claims.rst",
            category="Figures",
        ),
    log:
        per_seed("logs/report/significance.log"),
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        models=HELM_SUITES[""],
        scenarios=config["helm"]["scenarios"],
        statistics=config["statistics"],
        seed=run_seed,
        base_name=config["base_model"]["name"],
        label=seed_label,
    script:
        "../workflow/scripts/significance.py"


rule helm_ci:
    input:
        summary=per_seed("results/helm/summary.csv"),
    output:
        csv=per_seed("results/tables/helm_ci.csv"),
    log:
        per_seed("logs/report/helm_ci.log"),
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        models=HELM_SUITES[""],
    script:
        "../workflow/scripts/helm_ci.py"


rule style_bias:
    input:
        **STYLE_BIAS_INPUTS,
    output:
        csv="results/judge/style_bias.csv",
        run="results/judge/style_bias.run.json",
    log:
        "logs/judge/style_bias.log",
    conda:
        "../envs/training.yaml"
    threads: config["threads"]
    resources:
        mem_mb=32000 if REWARD_MODEL_GPUS else 4000,
        gpu=REWARD_MODEL_GPUS,
    params:
        styles=STYLES,
        judge=config["judge"],
        win_rates=config["win_rates"],
        style_bias=config["style_bias"],
        statistics=config["statistics"],
        seed=config["seed"],
    script:
        "../workflow/scripts/style_bias.py"


rule style_bias_report:
    input:
        csv="results/judge/style_bias.csv",
    output:
        csv="results/tables/style_bias.csv",
        md="results/tables/style_bias.md",
        tex="results/tables/style_bias.tex",
        pdf="results/figures/style_bias.pdf",
        png=report(
            "results/figures/style_bias.png",
            caption="../workflow/report/style_bias.rst",
            category="Figures",
        ),
    log:
        "logs/report/style_bias.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        styles=STYLES,
        label=REPORT_LABEL,
    script:
        "../workflow/scripts/report_style_bias.py"


# With more than one seed (`rule all` asks for it then): each comparison's difference in every
# seed with its mean and t-interval, how many seeds found it significant in each direction,
# and each paper claim's status seed by seed with the verdict across seeds
# (stylized_dpo.report.seeds_claims; read from each seed's tables, never recomputed).
rule significance_seeds:
    input:
        significance=every_seed([rules.significance.output.csv]),
        claims=every_seed([rules.significance.output.claims_csv]),
    output:
        csv="results/tables/significance_seeds.csv",
        md="results/tables/significance_seeds.md",
        tex="results/tables/significance_seeds.tex",
        claims_csv="results/tables/claims_seeds.csv",
        claims_md="results/tables/claims_seeds.md",
        claims_pdf="results/figures/claims_seeds.pdf",
        claims_png=report(
            "results/figures/claims_seeds.png",
            caption="../workflow/report/claims_seeds.rst",
            category="Across seeds",
        ),
    log:
        "logs/report/significance_seeds.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        seeds=SEEDS,
        base_name=config["base_model"]["name"],
        label=SEEDS_LABEL,
    script:
        "../workflow/scripts/seeds_statistics.py"
