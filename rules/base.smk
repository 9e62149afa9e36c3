# The base model: pretrained here on the world corpus (the miniature) or fetched from the hub.
if config["base_model"]["source"] == "pretrain":

    rule pretrain_base:
        input:
            corpus="results/world/corpus.jsonl",
            chats="results/data/sft/train.jsonl",
        output:
            model=directory("results/models/base"),
            metrics="results/train/base/metrics.jsonl",
        log:
            "logs/pretrain_base/pretrain_base.log",
        benchmark:
            "results/benchmarks/pretrain_base.tsv"
        conda:
            "../envs/training.yaml"
        threads: config["threads"]
        resources:
            mem_mb=4000,
            gpu=GPUS,
            gpu_mem_mb=GPU_MEM_MB,
            runtime=RUNTIME_MIN["pretrain_base"],
        params:
            tokenizer=config["base_model"]["tokenizer"],
            architecture=config["base_model"]["architecture"],
            pretrain=config["base_model"]["pretrain"],
            seed=config["seed"],
            checkpoint_dir="results/train/base/checkpoint",
        script:
            "../workflow/scripts/pretrain_base.py"

else:

    rule fetch_base_model:
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
            name=config["base_model"]["name"],
            revision=config["base_model"].get("revision"),
        script:
            "../workflow/scripts/fetch_base_model.py"
