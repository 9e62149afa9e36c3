# Shared definitions: config validation, the names of models and datasets, input functions.
import copy
import os

from snakemake.utils import validate

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

STYLES = list(config["styles"])
for _style in STYLES:
    # Without its prompt file a style's jobs would silently drop out of the DAG.
    if not os.path.isfile(f"config/prompts/styles/{_style}.yaml"):
        raise ValueError(
            f"style '{_style}' (config `styles`) has no prompt file "
            f"config/prompts/styles/{_style}.yaml: write one (see the existing styles)"
        )
PREF_DATASETS = ["ultrafeedback"] + STYLES
DPO_MODELS = [f"dpo-{dataset}" for dataset in PREF_DATASETS]
MODELS = ["base", "sft"] + DPO_MODELS
SPLITS = ["train", "test"]


wildcard_constraints:
    style="|".join(STYLES),
    dataset="|".join(PREF_DATASETS),
    model="|".join(MODELS),
    split="|".join(SPLITS),


def model_dir(name):
    return f"results/models/{name}"


def is_style(dataset):
    return dataset in STYLES


def get_dpo_params(wildcards):
    """DPO hyper-parameters of one dataset: shared values, its Table 2 column, then overrides."""
    dpo = config["dpo"]
    params = {
        k: copy.deepcopy(v)
        for k, v in dpo.items()
        if k not in ("ultrafeedback", "styles", "per_dataset")
    }
    params.update(
        dpo["styles"] if is_style(wildcards.dataset) else dpo["ultrafeedback"]
    )
    params.update(dpo.get("per_dataset", {}).get(wildcards.dataset, {}))
    params["seed"] = config["seed"]
    return canonical(params)


def get_helm_run_input(wildcards):
    """A model, and the offline scenario files unless HELM downloads the real benchmarks."""
    inputs = {"model": model_dir(wildcards.model)}
    if config["helm"]["data"] == "world":
        inputs["data"] = "results/helm/data"
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
    return {k: v for k, v in get_dpo_params(wildcards).items() if k in keys}


def get_final_output():
    """Every artefact of the study: the paper's tables and figures, and the style measures of
    the preference data and of each model's generations."""
    return report_targets(sycophancy=bool(SYCOPHANCY_TARGETS)) + [
        "results/data/prefs/style_measures.csv",
        "results/style/generations.csv",
        *SYCOPHANCY_TARGETS,
    ]
