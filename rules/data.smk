# Data: the tiny world (embedded default), then SFT chats and preference pairs from the world,
# local files or the hub, each validated and written with a data card.
import os
from dataclasses import asdict

from stylized_dpo.data import source_config, source_paths
from stylized_dpo.resources import tokenize_mem_mb
from stylized_dpo.style_phrases import PHRASE_BANKS

DATA_SOURCES = {
    kind: source_config(config["data"][kind], kind) for kind in ("sft", "prefs")
}


rule world:
    output:
        world="results/world/world.json",
        corpus="results/world/corpus.jsonl",
        sft_train="results/world/smoltalk/train.jsonl",
        sft_test="results/world/smoltalk/test.jsonl",
        prefs_train="results/world/ultrafeedback/train_prefs.jsonl",
        prefs_test="results/world/ultrafeedback/test_prefs.jsonl",
        eval_prompts="results/world/eval_prompts.jsonl",
    log:
        "logs/world/world.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        world=config["world"],
        # Every style the offline rewriter knows voices a few SFT answers, whichever styles the
        # study trains on: adding or dropping a style must not change the SFT data.
        styles=sorted(PHRASE_BANKS),
        seed=config["seed"],
        out_dir=lambda wildcards, output: os.path.dirname(output.world),
    script:
        "../workflow/scripts/world.py"


rule prepare_sft:
    input:
        unpack(lambda wildcards: source_paths(DATA_SOURCES["sft"])),
    output:
        train="results/data/sft/train.jsonl",
        test="results/data/sft/test.jsonl",
        card="results/data/sft/card.json",
        card_md="results/data/sft/card.md",
    log:
        "logs/prepare_sft/prepare_sft.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=16000 if DATA_SOURCES["sft"].source == "hub" else 2000,
    params:
        source=asdict(DATA_SOURCES["sft"]),
    script:
        "../workflow/scripts/prepare_sft.py"


rule prepare_prefs:
    input:
        unpack(lambda wildcards: source_paths(DATA_SOURCES["prefs"])),
    output:
        train="results/data/prefs/ultrafeedback/train.jsonl",
        test="results/data/prefs/ultrafeedback/test.jsonl",
        card="results/data/prefs/ultrafeedback/card.json",
        card_md="results/data/prefs/ultrafeedback/card.md",
    log:
        "logs/prepare_prefs/prepare_prefs.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=16000 if DATA_SOURCES["prefs"].source == "hub" else 2000,
    params:
        source=asdict(DATA_SOURCES["prefs"]),
    script:
        "../workflow/scripts/prepare_prefs.py"


# Beyond the paper: SFT data made of UltraFeedback's chosen answers (limitation 1) and
# preference sets without tone-agnostic prompts (limitation 3); see common.smk.
rule sft_chosen_data:
    input:
        pairs="results/data/prefs/ultrafeedback/{split}.jsonl",
    output:
        examples="results/data/sft-chosen/{split}.jsonl",
    log:
        "logs/sft_chosen_data/{split}.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../workflow/scripts/sft_chosen_data.py"


rule tone_filter:
    input:
        pairs="results/data/prefs/{paper_dataset}/{split}.jsonl",
        patterns=config["tone_filter"]["patterns"],
    output:
        pairs="results/data/prefs/{paper_dataset}-tonal/{split}.jsonl",
        card="results/data/prefs/{paper_dataset}-tonal/{split}_filter.json",
    log:
        "logs/tone_filter/{paper_dataset}_{split}.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../workflow/scripts/tone_filter.py"


# Tokenised shards: each split tokenised and length-filtered once, keyed by the tokenizer (and
# its chat template) and the length limits; training jobs read these.
rule tokenize_sft:
    input:
        tokenizer="results/tokenizer",
        examples="results/data/{sft_model}/{split}.jsonl",
    output:
        tokens="results/data/{sft_model}/tokens/{split}.parquet",
        card="results/data/{sft_model}/tokens/{split}.json",
    log:
        "logs/tokenize_sft/{sft_model}_{split}.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, input: tokenize_mem_mb(input.examples),
    params:
        kind="sft",
        max_prompt_tokens=lambda wildcards: get_sft_params(wildcards)[
            "max_prompt_tokens"
        ],
        max_completion_tokens=lambda wildcards: get_sft_params(wildcards)[
            "max_completion_tokens"
        ],
    script:
        "../workflow/scripts/tokenize.py"


rule tokenize_prefs:
    input:
        tokenizer="results/tokenizer",
        examples="results/data/prefs/{dataset}/{split}.jsonl",
    output:
        tokens="results/data/prefs/{dataset}/tokens/{split}.parquet",
        card="results/data/prefs/{dataset}/tokens/{split}.json",
    log:
        "logs/tokenize_prefs/{dataset}_{split}.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, input: tokenize_mem_mb(input.examples),
    params:
        kind="prefs",
        max_prompt_tokens=lambda wildcards: dpo_params(wildcards.dataset)[
            "max_prompt_tokens"
        ],
        max_completion_tokens=lambda wildcards: dpo_params(wildcards.dataset)[
            "max_completion_tokens"
        ],
    script:
        "../workflow/scripts/tokenize.py"
