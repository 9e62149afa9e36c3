# Data: the tiny world (embedded default), then SFT chats and preference pairs from the world,
# local files or the hub, each validated and written with a data card.
import os
from dataclasses import asdict

from stylized_dpo.data import source_config, source_paths
from stylized_dpo.synth.rules import PHRASE_BANKS


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
        unpack(
            lambda wildcards: source_paths(source_config(config["data"]["sft"], "sft"))
        ),
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
        mem_mb=16000 if config["data"]["sft"]["source"] == "hub" else 2000,
    params:
        source=asdict(source_config(config["data"]["sft"], "sft")),
    script:
        "../workflow/scripts/prepare_sft.py"


rule prepare_prefs:
    input:
        unpack(
            lambda wildcards: source_paths(
                source_config(config["data"]["prefs"], "prefs")
            )
        ),
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
        mem_mb=16000 if config["data"]["prefs"]["source"] == "hub" else 2000,
    params:
        source=asdict(source_config(config["data"]["prefs"], "prefs")),
    script:
        "../workflow/scripts/prepare_prefs.py"
