# HELM (crfm-helm 0.5.16) on the five core scenarios, offline, per model; then one summary.
# helm-run and helm-summarize come from config `helm.executable_dir` (their own environment:
# crfm-helm's pins clash with the main stack); the scripts call them as subprocesses.
# `helm.data: world` runs offline on scenario files built from the tiny world; `download` lets
# HELM fetch the real benchmarks (the paper's configuration).


rule helm_data:
    input:
        world="results/world/world.json",
    output:
        data=directory("results/helm/data"),
    log:
        "logs/helm/data.log",
    conda:
        "../envs/helm.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        n_instances=config["world"]["helm_instances"],
        seed=config["seed"],
    script:
        "../workflow/scripts/helm_data.py"


rule helm_run:
    input:
        unpack(get_helm_run_input),
    output:
        run=directory("results/helm/runs/{model}"),
    log:
        "logs/helm/run_{model}.log",
    benchmark:
        "results/benchmarks/helm_run_{model}.tsv"
    conda:
        "../envs/helm.yaml"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        gpu=lambda wildcards: 0 if config["helm"].get("device", "cpu") == "cpu" else 1,
        gpu_mem_mb=GPU_MEM_MB if config["helm"].get("device", "cpu") != "cpu" else 0,
        runtime=RUNTIME_MIN["helm_run"],
    params:
        helm=config["helm"],
        max_eval_instances=config["helm"]["max_eval_instances"],
        scenarios=config["helm"]["scenarios"],
        data_augmentation=config["helm"]["data_augmentation"],
    script:
        "../workflow/scripts/helm_run.py"


# HELM's mean win rates compare the models summarised together: the paper's tables read a suite
# of the paper's models alone, so the extension switches (common.smk) leave them as they are;
# with extra models, `summary_all.csv` compares every model.
HELM_SUITES = {"": ["base", "sft"] + PAPER_DPO_MODELS}
if MODELS != HELM_SUITES[""]:
    HELM_SUITES["_all"] = MODELS


rule helm_summarize:
    input:
        runs=lambda wildcards: expand(
            "results/helm/runs/{model}", model=HELM_SUITES[wildcards.suite]
        ),
        models=lambda wildcards: expand(
            "results/models/{model}", model=HELM_SUITES[wildcards.suite]
        ),
    output:
        summary="results/helm/summary{suite}.csv",
        helm=directory("results/helm/summarize{suite}"),
    log:
        "logs/helm/summarize{suite}.log",
    wildcard_constraints:
        suite="(?:%s)" % "|".join(HELM_SUITES),
    conda:
        "../envs/helm.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        helm=config["helm"],
        models=lambda wildcards: HELM_SUITES[wildcards.suite],
    script:
        "../workflow/scripts/helm_summarize.py"
