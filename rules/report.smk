# The paper's tables and figures, one rule per artefact, each built only from the files it needs:
# Table 3 from the training metrics and win rates, Tables 4-8 from the HELM summary, Figure 2
# from the DPO metrics, Figure 3 from the judge summary; the reproduction figure from the tables
# and the paper's published numbers. `REPORT_TARGETS` collects the rules' outputs for `rule all`.
from stylized_dpo.report.common import comparison_kind, run_label
from stylized_dpo.report.paper_tables import HELM_TABLE_FAMILY

HELM_TABLES = [4, *HELM_TABLE_FAMILY]
TRAIN_RUNS = ["sft"] + PAPER_DPO_MODELS
REPORT_LABEL = run_label(config)

PAPER_RESULTS = "config/paper_results.yaml"


rule table3:
    input:
        metrics=expand(
            per_seed("results/train/{run}/metrics.jsonl"),
            run=TRAIN_RUNS,
            allow_missing=True,
        ),
        win_rates=per_seed("results/judge/win_rates.csv"),
    output:
        csv=per_seed("results/tables/table3.csv"),
        tex=per_seed("results/tables/table3.tex"),
        md=per_seed("results/tables/table3.md"),
        pdf=report(
            per_seed("results/figures/table3.pdf"),
            caption="../workflow/report/table3.rst",
            category="Tables",
        ),
    log:
        per_seed("logs/report/table3.log"),
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        runs=TRAIN_RUNS,
        styles=STYLES,
        base_name=config["base_model"]["name"],
        baseline=config["win_rates"]["baseline"],
        label=seed_label,
    script:
        "../workflow/scripts/report_table3.py"


for n in HELM_TABLES:

    rule:
        name:
            f"table{n}"
        input:
            summary=per_seed("results/helm/summary.csv"),
        output:
            csv=per_seed(f"results/tables/table{n}.csv"),
            tex=per_seed(f"results/tables/table{n}.tex"),
            md=per_seed(f"results/tables/table{n}.md"),
            pdf=report(
                per_seed(f"results/figures/table{n}.pdf"),
                caption=(
                    "../workflow/report/table4.rst"
                    if n == 4
                    else "../workflow/report/helm_family.rst"
                ),
                category="Tables",
            ),
        log:
            per_seed(f"logs/report/table{n}.log"),
        conda:
            "../envs/training.yaml"
        threads: 1
        resources:
            mem_mb=1000,
        params:
            number=n,
            family=HELM_TABLE_FAMILY.get(n, "all"),  # read by helm_family.rst
            styles=STYLES,
            base_name=config["base_model"]["name"],
            scenarios=config["helm"]["scenarios"],
            label=seed_label,
        script:
            "../workflow/scripts/report_helm_table.py"


rule figure2:
    input:
        metrics=expand(
            per_seed("results/train/{run}/metrics.jsonl"),
            run=PAPER_DPO_MODELS,
            allow_missing=True,
        ),
    output:
        pdf=per_seed("results/figures/figure2.pdf"),
        png=report(
            per_seed("results/figures/figure2.png"),
            caption="../workflow/report/figure2.rst",
            category="Figures",
        ),
    log:
        per_seed("logs/report/figure2.log"),
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        runs=PAPER_DPO_MODELS,
        styles=STYLES,
        label=seed_label,
    script:
        "../workflow/scripts/report_figure2.py"


rule figure3:
    input:
        summary=per_seed("results/judge/summary.csv"),
    output:
        pdf=per_seed("results/figures/figure3.pdf"),
        png=report(
            per_seed("results/figures/figure3.png"),
            caption="../workflow/report/figure3.rst",
            category="Figures",
        ),
    log:
        per_seed("logs/report/figure3.log"),
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        styles=STYLES,
        base_name=config["base_model"]["name"],
        label=seed_label,
    script:
        "../workflow/scripts/report_figure3.py"


rule reproduction:
    input:
        tables=expand(
            per_seed("results/tables/table{n}.csv"),
            n=[3] + HELM_TABLES,
            allow_missing=True,
        ),
        paper=PAPER_RESULTS,
    output:
        csv=per_seed("results/tables/reproduction.csv"),
        pdf=per_seed("results/figures/reproduction.pdf"),
        png=report(
            per_seed("results/figures/reproduction.png"),
            caption="../workflow/report/reproduction.rst",
            category="Figures",
        ),
    log:
        per_seed("logs/report/reproduction.log"),
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        numbers=[3] + HELM_TABLES,
        styles=STYLES,
        comparison=comparison_kind(config),
        label=seed_label,
    script:
        "../workflow/scripts/report_reproduction.py"


# Figures beyond the paper's: the style of the answers, win rates with answer lengths, every HELM
# value as a heatmap, and the sycophancy probe.
rule figure_style:
    input:
        generations=per_seed("results/style/generations.csv"),
        prefs="results/data/prefs/style_measures.csv",
    output:
        pdf=per_seed("results/figures/figure_style.pdf"),
        png=report(
            per_seed("results/figures/figure_style.png"),
            caption="../workflow/report/figure_style.rst",
            category="Figures",
        ),
    log:
        per_seed("logs/report/figure_style.log"),
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        styles=STYLES,
        base_name=config["base_model"]["name"],
        label=seed_label,
    script:
        "../workflow/scripts/report_figure_style.py"


rule figure_win_rates:
    input:
        win_rates=per_seed("results/judge/win_rates.csv"),
    output:
        pdf=per_seed("results/figures/figure_win_rates.pdf"),
        png=report(
            per_seed("results/figures/figure_win_rates.png"),
            caption="../workflow/report/figure_win_rates.rst",
            category="Figures",
        ),
    log:
        per_seed("logs/report/figure_win_rates.log"),
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        styles=STYLES,
        base_name=config["base_model"]["name"],
        baseline=config["win_rates"]["baseline"],
        label=seed_label,
    script:
        "../workflow/scripts/report_figure_win_rates.py"


rule figure_helm:
    input:
        summary=per_seed("results/helm/summary.csv"),
    output:
        pdf=per_seed("results/figures/figure_helm.pdf"),
        png=report(
            per_seed("results/figures/figure_helm.png"),
            caption="../workflow/report/figure_helm.rst",
            category="Figures",
        ),
    log:
        per_seed("logs/report/figure_helm.log"),
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        styles=STYLES,
        base_name=config["base_model"]["name"],
        scenarios=config["helm"]["scenarios"],
        label=seed_label,
    script:
        "../workflow/scripts/report_figure_helm.py"


# Asked for by `rule all` only where the sycophancy probe runs (rules/sycophancy.smk).
rule figure_sycophancy:
    input:
        summary=per_seed("results/sycophancy/summary.csv"),
    output:
        pdf=per_seed("results/figures/figure_sycophancy.pdf"),
        png=report(
            per_seed("results/figures/figure_sycophancy.png"),
            caption="../workflow/report/figure_sycophancy.rst",
            category="Figures",
        ),
    log:
        per_seed("logs/report/figure_sycophancy.log"),
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        styles=STYLES,
        base_name=config["base_model"]["name"],
        label=seed_label,
    script:
        "../workflow/scripts/report_figure_sycophancy.py"


# `rule all` asks for every output above, the sycophancy figure only where the probe runs
# (rules/sycophancy.smk leaves itself out of the DAG without items). The names do not depend on
# the config: styles change the rows inside, not the files. Every seed has its own.
REPORT_TARGETS = every_seed(
    path
    for name in [
        "table3",
        *(f"table{n}" for n in HELM_TABLES),
        "figure2",
        "figure3",
        "reproduction",
        "figure_style",
        "figure_win_rates",
        "figure_helm",
    ]
    for path in getattr(rules, name).output
)
SYCOPHANCY_FIGURE = every_seed(rules.figure_sycophancy.output)


# Beyond the paper, with more than one seed (config `seeds`; `rule all` asks for it then): every
# value of Tables 3-8, of the judge and win-rate summaries and of the style measures per seed,
# with the mean and a 95% Student-t interval across seeds (stylized_dpo.report.seeds).
SEED_SUMMARY_SOURCES = {
    **{
        f"table{n}": per_seed(f"results/tables/table{n}.csv") for n in [3] + HELM_TABLES
    },
    "judge_summary": per_seed("results/judge/summary.csv"),
    "win_rates": per_seed("results/judge/win_rates.csv"),
    "style": per_seed("results/style/generations.csv"),
}


rule seeds_summary:
    input:
        # seed by seed, each seed's sources in the order of SEED_SUMMARY_SOURCES
        tables=every_seed(SEED_SUMMARY_SOURCES.values()),
    output:
        csv="results/tables/seeds_summary.csv",
        md="results/tables/seeds_summary.md",
    log:
        "logs/report/seeds_summary.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        seeds=SEEDS,
        sources=list(SEED_SUMMARY_SOURCES),
        label=REPORT_LABEL,
    script:
        "../workflow/scripts/seeds_summary.py"


# With more than one seed (`rule all` asks for these then): each of Tables 3-8 with every cell
# the mean over seeds and its 95% t-interval (stylized_dpo.report.seeds), built from every
# seed's own inputs of that table, and the headline numbers of each model seed by seed.
for n in [3] + HELM_TABLES:

    rule:
        name:
            f"table{n}_seeds"
        input:
            **(
                {
                    # seed by seed, each seed's runs in the order of TRAIN_RUNS
                    "metrics": every_seed(rules.table3.input.metrics),
                    "win_rates": every_seed([rules.table3.input.win_rates]),
                }
                if n == 3
                else {"summary": every_seed([per_seed("results/helm/summary.csv")])}
            ),
        output:
            csv=f"results/tables/table{n}_seeds.csv",
            tex=f"results/tables/table{n}_seeds.tex",
            md=f"results/tables/table{n}_seeds.md",
            pdf=report(
                f"results/figures/table{n}_seeds.pdf",
                caption="../workflow/report/table_seeds.rst",
                category="Across seeds",
            ),
        log:
            f"logs/report/table{n}_seeds.log",
        conda:
            "../envs/training.yaml"
        threads: 1
        resources:
            mem_mb=1000,
        params:
            number=n,
            seeds=SEEDS,
            runs=TRAIN_RUNS,
            styles=STYLES,
            base_name=config["base_model"]["name"],
            baseline=config["win_rates"]["baseline"],
            scenarios=config["helm"]["scenarios"],
            label=SEEDS_LABEL,
        script:
            "../workflow/scripts/report_table_seeds.py"


rule figure_seeds:
    input:
        judge_summary=every_seed([per_seed("results/judge/summary.csv")]),
        table3=every_seed([rules.table3.output.csv]),
        table4=every_seed([rules.table4.output.csv]),
    output:
        pdf="results/figures/seeds.pdf",
        png=report(
            "results/figures/seeds.png",
            caption="../workflow/report/figure_seeds.rst",
            category="Across seeds",
        ),
    log:
        "logs/report/figure_seeds.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        seeds=SEEDS,
        styles=STYLES,
        base_name=config["base_model"]["name"],
        label=SEEDS_LABEL,
    script:
        "../workflow/scripts/report_figure_seeds.py"


SEED_REPORT_TARGETS = [
    *rules.seeds_summary.output,
    *(
        path
        for n in [3] + HELM_TABLES
        for path in getattr(rules, f"table{n}_seeds").output
    ),
    *rules.figure_seeds.output,
]
