# The base model: pretrained here on the world corpus (the miniature) or fetched from the hub.
# Its tokenizer is a rule of its own: the tokenised shards depend on it and not on the weights.
BASE_SOURCE = BASE_MODEL.source
CHAT_TEMPLATE = BASE_MODEL.tokenizer.chat_template
# Only what makes the tokenizer: a new display name or architecture must not rebuild the shards.
TOKENIZER_SPEC = (
    {
        "source": "pretrain",
        "vocab_size": BASE_MODEL.tokenizer.vocab_size,
        "model_max_length": BASE_MODEL.architecture.max_position_embeddings,
    }
    if BASE_SOURCE == "pretrain"
    else {
        "source": "hub",
        "name": BASE_MODEL.name,
        "revision": BASE_MODEL.revision,
    }
)


rule tokenizer:
    input:
        **(
            {
                "corpus": "results/world/corpus.jsonl",
                "chats": "results/data/sft/train.jsonl",
            }
            if BASE_SOURCE == "pretrain"
            else {}
        ),
        **({"chat_template": CHAT_TEMPLATE} if CHAT_TEMPLATE else {}),
    output:
        tokenizer=directory("results/tokenizer"),
    log:
        "logs/tokenizer/tokenizer.log",
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        spec=TOKENIZER_SPEC,
    script:
        "../workflow/scripts/tokenizer.py"


if BASE_SOURCE == "pretrain":

    rule pretrain_base:
        input:
            corpus="results/world/corpus.jsonl",
            tokenizer="results/tokenizer",
        output:
            model=directory(per_seed("results/models/base")),
            metrics=per_seed("results/train/base/metrics.jsonl"),
        log:
            per_seed("logs/pretrain_base/pretrain_base.log"),
        benchmark:
            per_seed("results/benchmarks/pretrain_base.tsv")
        conda:
            "../envs/training.yaml"
        threads: config["threads"]
        resources:
            mem_mb=4000,
            gpu=GPUS,
            gpu_mem_mb=GPU_MEM_MB,
            runtime=RUNTIME_MIN["pretrain_base"],
        params:
            architecture=config["base_model"]["architecture"],
            pretrain=config["base_model"]["pretrain"],
            seed=run_seed,
        script:
            "../workflow/scripts/pretrain_base.py"

else:

    rule fetch_base_model:
        input:
            tokenizer="results/tokenizer",
        output:
            model=directory("results/models/base"),
        log:
            "logs/fetch_base_model/fetch_base_model.log",
        conda:
            "../envs/training.yaml"
        threads: 1
        resources:
            mem_mb=8000,
        params:
            name=BASE_MODEL.name,
            revision=BASE_MODEL.revision,
        script:
            "../workflow/scripts/fetch_base_model.py"
