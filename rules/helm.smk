# HELM (crfm-helm 0.5.16) on the five core scenarios, offline, per model; then one summary.
# helm-run and helm-summarize come from config `helm.executable_dir` (their own environment:
# crfm-helm's pins clash with the main stack); the scripts call them as subprocesses.
# `helm.data: world` runs offline on scenario files built from the tiny world; `local` offline
# on HELM's own files pre-placed at `helm.data_path`; `download` lets HELM fetch the real
# benchmarks (the paper's configuration). helm_run's runtime is estimated from its requests
# (stylized_dpo.evals.helm.runtime_min_estimate, unless compute.runtime_min.helm_run is set) and
# its memory from the model's weights.
from stylized_dpo.evals.helm import mem_mb_estimate, runtime_min_estimate

HELM_GPU = HELM.device != "cpu"
HELM_RUNTIME_MIN = (
    COMPUTE.runtime_min["helm_run"]
    if "helm_run" in COMPUTE.runtime_min
    else runtime_min_estimate(HELM)
)
# The keys that change what HELM computes (the throughput only sizes the job).
HELM_PARAMS = {k: v for k, v in config["helm"].items() if k != "requests_per_s"}


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
        mmlu_subjects=config["helm"]["mmlu_subjects"],
    script:
        "../workflow/scripts/helm_data.py"


rule helm_run:
    input:
        unpack(get_helm_run_input),
    output:
        run=directory(per_seed("results/helm/runs/{model}")),
    log:
        per_seed("logs/helm/run_{model}.log"),
    benchmark:
        per_seed("results/benchmarks/helm_run_{model}.tsv")
    conda:
        "../envs/helm.yaml"
    threads: config["threads"]
    resources:
        mem_mb=lambda wildcards, input: mem_mb_estimate(input.model, HELM),
        gpu=1 if HELM_GPU else 0,
        gpu_mem_mb=GPU_MEM_MB if HELM_GPU else 0,
        runtime=HELM_RUNTIME_MIN,
    params:
        helm=HELM_PARAMS,
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
        runs=lambda wildcards: [
            per_seed(
                f"results/helm/runs/{model}", model_seeddir(model, wildcards.seeddir)
            )
            for model in HELM_SUITES[wildcards.suite]
        ],
        models=lambda wildcards: [
            model_dir(model, wildcards.seeddir)
            for model in HELM_SUITES[wildcards.suite]
        ],
    output:
        summary=per_seed("results/helm/summary{suite}.csv"),
        helm=directory(per_seed("results/helm/summarize{suite}")),
    log:
        per_seed("logs/helm/summarize{suite}.log"),
    wildcard_constraints:
        suite="(?:%s)" % "|".join(HELM_SUITES),
    conda:
        "../envs/helm.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        helm=HELM_PARAMS,
        models=lambda wildcards: HELM_SUITES[wildcards.suite],
        statistics=config["statistics"],
        seed=run_seed,
    script:
        "../workflow/scripts/helm_summarize.py"
