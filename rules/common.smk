# Shared definitions: config validation, the names of models and datasets, input functions.
import copy
import os

from snakemake.utils import validate

from stylized_dpo.config_checks import check_api_keys, check_config, check_schema

# Every schema violation at once, each naming its key (with a hint where YAML read a number as
# a string); validate() then applies the schema as Snakemake does.
check_schema(config, os.path.join(workflow.basedir, "config", "schema.yaml"))
validate(config, schema="../config/schema.yaml")


def canonical(value):
    """The value with every mapping's keys sorted (lists keep their order)."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


# Rule params hold config sections; Snakemake compares params by their serialisation, so key
# order would count as a change. Sorting once makes a reordered config file rerun nothing.
_canonical_config = canonical(config)
config.clear()
config.update(_canonical_config)


include: "seeds.smk"


STYLES = list(config["styles"])
for _style in STYLES:
    # Without its prompt file a style's jobs would silently drop out of the DAG.
    if not os.path.isfile(f"config/prompts/styles/{_style}.yaml"):
        raise ValueError(
            f"style '{_style}' (config `styles`) has no prompt file "
            f"config/prompts/styles/{_style}.yaml: write one (see the existing styles)"
        )
PAPER_DATASETS = ["ultrafeedback"] + STYLES
# Beyond the paper (its limitations 3 and 1), each an extra branch beside the paper's runs:
# `<dataset>-tonal` sets without tone-agnostic prompts, and an SFT stage on UltraFeedback's
# chosen answers (`sft-chosen`) that then starts and anchors DPO on every set.
TONAL = "-tonal"
TONAL_DATASETS = (
    [f"{d}{TONAL}" for d in PAPER_DATASETS] if config["tone_filter"]["enabled"] else []
)
PREF_DATASETS = PAPER_DATASETS + TONAL_DATASETS
SFT_START = {"sft": "base"}  # SFT model -> the model it starts from
if config["sft_on_chosen"]["enabled"]:
    SFT_START["sft-chosen"] = "sft"
SFT_MODELS = list(SFT_START)
# DPO model -> (preference dataset, the SFT model that starts it and is its reference)
DPO_RUNS = {f"dpo-{d}": (d, "sft") for d in PREF_DATASETS}
if "sft-chosen" in SFT_START:
    DPO_RUNS.update(
        {f"dpo-{d}-after-sft-chosen": (d, "sft-chosen") for d in PREF_DATASETS}
    )
DPO_MODELS = list(DPO_RUNS)
PAPER_DPO_MODELS = [
    f"dpo-{d}" for d in PAPER_DATASETS
]  # the rows of the paper's tables
MODELS = ["base"] + SFT_MODELS + DPO_MODELS
SPLITS = ["train", "test"]
# Names, architectures and backends the schema cannot check, before any job runs.
check_config(config, models=MODELS, pref_datasets=PREF_DATASETS)


def check_api_keys_of_planned_jobs():
    """Called on start (the Snakefile's `onstart`, which dry runs and spawned cluster jobs
    skip): a real run stops before its first job when an API backend it will call has no key
    (the variable is named, never read out)."""
    if not workflow.touch:
        check_api_keys(config, {job.rule.name for job in workflow.dag.needrun_jobs()})


# Reference log-probs of the paper's reference (sft) keep the design's file names.
REF_SUFFIX = {"sft": "", "sft-chosen": ".sft-chosen"}


wildcard_constraints:
    style="|".join(STYLES),
    dataset="|".join(PREF_DATASETS),
    paper_dataset="|".join(PAPER_DATASETS),
    model="|".join(MODELS),
    sft_model="|".join(SFT_MODELS),
    dpo_model="|".join(DPO_MODELS),
    # may be empty (the paper's reference): an empty constraint would mean "anything"
    ref_suffix="(?:%s)"
    % "|".join(REF_SUFFIX[m].replace(".", "\\.") for m in SFT_MODELS),
    split="|".join(SPLITS),


def is_style(dataset):
    return dataset.removesuffix(TONAL) in STYLES


def get_sft_params(wildcards):
    """SFT hyper-parameters of one SFT model: the `sft` section, for `sft-chosen` overridden by
    `sft_on_chosen.sft`."""
    params = copy.deepcopy(config["sft"])
    if wildcards.sft_model == "sft-chosen":
        params.update(config["sft_on_chosen"]["sft"])
    params["seed"] = run_seed(wildcards)
    return canonical(params)


def get_sft_input(wildcards):
    return {
        "model": model_dir(SFT_START[wildcards.sft_model], wildcards.seeddir),
        "train": f"results/data/{wildcards.sft_model}/tokens/train.parquet",
        "test": f"results/data/{wildcards.sft_model}/tokens/test.parquet",
    }


def dpo_params(dataset):
    """DPO hyper-parameters of one dataset: shared values, its Table 2 column, then overrides."""
    dpo = config["dpo"]
    params = {
        k: copy.deepcopy(v)
        for k, v in dpo.items()
        if k not in ("ultrafeedback", "styles", "per_dataset")
    }
    params.update(dpo["styles"] if is_style(dataset) else dpo["ultrafeedback"])
    params.update(dpo.get("per_dataset", {}).get(dataset, {}))
    params["seed"] = config["seed"]
    return canonical(params)


def get_dpo_params(wildcards):
    return {**dpo_params(DPO_RUNS[wildcards.dpo_model][0]), "seed": run_seed(wildcards)}


def get_dpo_input(wildcards):
    """A DPO run's starting model, its tokenised pairs and their reference log-probs."""
    dataset, start = DPO_RUNS[wildcards.dpo_model]
    prefs = f"results/data/prefs/{dataset}"
    ref_logps = per_seed(f"{prefs}/ref_logps", wildcards.seeddir)
    return {
        "model": model_dir(start, wildcards.seeddir),
        "train": f"{prefs}/tokens/train.parquet",
        "test": f"{prefs}/tokens/test.parquet",
        "ref_train": f"{ref_logps}_train{REF_SUFFIX[start]}.parquet",
        "ref_test": f"{ref_logps}_test{REF_SUFFIX[start]}.parquet",
    }


def get_helm_run_input(wildcards):
    """A model, and the offline scenario files unless HELM downloads the real benchmarks."""
    inputs = {"model": model_dir(wildcards.model, wildcards.seeddir)}
    if HELM.data == "world":
        inputs["data"] = "results/helm/data"
    elif HELM.data == "local":
        inputs["data"] = HELM.data_path
    return inputs


def get_reference_model(wildcards):
    return model_dir(
        next(m for m in SFT_MODELS if REF_SUFFIX[m] == wildcards.ref_suffix),
        wildcards.seeddir,
    )


def get_reference_logps_input(wildcards):
    """The model and pairs of a reference_logps job; and the set whose cached sequences it
    reuses, so that it runs after it: a style set shares UltraFeedback's prompts and rejected
    answers, a -tonal set is a subset of its set."""
    dataset = wildcards.dataset
    reused = (
        dataset.removesuffix(TONAL)
        if dataset.endswith(TONAL)
        else "ultrafeedback" if is_style(dataset) else None
    )
    inputs = {
        "model": get_reference_model(wildcards),
        "pairs": f"results/data/prefs/{dataset}/tokens/{wildcards.split}.parquet",
    }
    if reused:
        inputs["reused"] = per_seed(
            f"results/data/prefs/{reused}/ref_logps_{wildcards.split}{wildcards.ref_suffix}.parquet",
            wildcards.seeddir,
        )
    return inputs


def get_reference_logps_params(wildcards):
    """The DPO values that change reference log-probs: the length filters, the batching,
    prefix sharing, the device. A new beta or learning rate reuses them."""
    keys = (
        "batch_size",
        "max_prompt_tokens",
        "max_completion_tokens",
        "prefix_sharing",
        "device",
    )
    return {k: v for k, v in dpo_params(wildcards.dataset).items() if k in keys}
