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
    params:
        helm=config["helm"],
        max_eval_instances=config["helm"]["max_eval_instances"],
        scenarios=config["helm"]["scenarios"],
        data_augmentation=config["helm"]["data_augmentation"],
    script:
        "../workflow/scripts/helm_run.py"


rule helm_summarize:
    input:
        runs=expand("results/helm/runs/{model}", model=MODELS),
        models=expand("results/models/{model}", model=MODELS),
    output:
        summary="results/helm/summary.csv",
        helm=directory("results/helm/summarize"),
    log:
        "logs/helm/summarize.log",
    conda:
        "../envs/helm.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        helm=config["helm"],
        models=MODELS,
    script:
        "../workflow/scripts/helm_summarize.py"
