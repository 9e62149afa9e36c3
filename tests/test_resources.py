"""mem_mb of training jobs from their inputs: exact input sizes, above the measured need."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from train_helpers import save_tiny_model, tiny_model_and_tokenizer, write_toy_files

from stylized_dpo.resources import (
    memory_mb,
    model_parameters,
    model_shape,
    shard_stats,
    tokenize_mem_mb,
    train_mem_mb,
)
from stylized_dpo.train.shards import read_shard, write_shard

# Qwen2.5-0.5B (config.json): 494,032,768 parameters with tied embeddings
QWEN_05B = {"hidden_size": 896, "num_hidden_layers": 24, "vocab_size": 151_936}
QWEN_05B_PARAMS = 494_032_768
SMOLTALK_TOKENS = 199_451_841  # benchmarks/bench_shard_memory.py --rows 460341 (the train split)
MEASURED_BYTES_PER_TOKEN = 4.87  # the same benchmark: the shard held as int32 arrays
LIST_BYTES_PER_TOKEN = 56.2  # and held as Python lists, as before
PAPER_SFT = {"batch_size": 8, "device": "auto", "max_prompt_tokens": 256}
PAPER_SFT |= {"max_completion_tokens": 1024}


@pytest.fixture
def toy(tmp_path):
    paths = write_toy_files(tmp_path)
    _, tokenizer = tiny_model_and_tokenizer()
    model_dir = save_tiny_model(tmp_path / "model")
    shards = {}
    for split in ("train", "test"):
        shards[split] = tmp_path / f"{split}.parquet"
        write_shard(
            "sft", paths[f"sft_{split}"], tokenizer, shards[split], tmp_path / f"{split}.json",
            256, 1024,
        )  # fmt: skip
    return paths, tokenizer, model_dir, shards


def test_input_sizes_are_read_exactly(toy):
    paths, tokenizer, model_dir, shards = toy
    model, _ = tiny_model_and_tokenizer()
    assert model_parameters(model_dir) == sum(p.numel() for p in model.parameters())
    assert model_shape(model_dir)["hidden_size"] == model.config.hidden_size
    shard = read_shard("sft", shards["train"], tokenizer, 256, 1024)
    stats = shard_stats(shards["train"])
    assert stats["tokens"] == sum(len(shard[i].input_ids) for i in range(len(shard)))
    assert stats["max_prompt"] == max(len(shard[i].prompt_ids) for i in range(len(shard)))
    assert stats["max_completion"] == max(len(shard[i].completion_ids) for i in range(len(shard)))


def test_a_missing_input_is_named_so_snakemake_waits_for_it(tmp_path):
    missing = str(tmp_path / "models" / "base")
    with pytest.raises(FileNotFoundError) as e:
        train_mem_mb("sft", missing, [], PAPER_SFT, 1)
    assert e.value.filename == missing  # Snakemake shows <TBD> for exactly this case


@pytest.mark.parametrize("gpus", [1, 8])
def test_paper_scale_sft_asks_for_more_than_it_needs(gpus):
    mem = memory_mb("sft", QWEN_05B_PARAMS, QWEN_05B, SMOLTALK_TOKENS, PAPER_SFT, gpus)
    shard_need = MEASURED_BYTES_PER_TOKEN * SMOLTALK_TOKENS / 2**20
    weights = 4 * QWEN_05B_PARAMS / 2**20  # fp32, loaded through host memory by every process
    need = shard_need + gpus * weights + 3 * weights  # + a checkpoint's weights and moments
    assert mem > need
    assert mem > 8000  # the constant the rule had: slurm killed the job at --mem 8000
    # and the lists the reader used to build would not even have fitted the shard alone
    assert LIST_BYTES_PER_TOKEN * SMOLTALK_TOKENS / 2**20 > 8000
    assert mem < 16_000 * gpus + 8000  # an 8xH100 node has ~1-2 TB; one GPU job stays modest


def test_miniature_sft_asks_for_little_and_more_than_its_measured_peak(toy, tmp_path):
    """A real SFT run (CPU, the toy shards, in its own process): its peak RSS is below the
    job's mem_mb, and the mem_mb is small."""
    paths, tokenizer, model_dir, shards = toy
    params = {"batch_size": 8, "max_steps": 4, "device": "cpu", "lr": 1e-3}
    mem = train_mem_mb("sft", model_dir, [shards["train"], shards["test"]], params, 1)
    code = (
        "import json, sys, torch\n"
        "from stylized_dpo.train.sft import SFTConfig, train_sft\n"
        "torch.set_num_threads(1)\n"
        "a = json.loads(sys.argv[1])\n"
        "train_sft(a['model'], a['train'], a['test'], a['out'], a['metrics'], a['ckpt'],\n"
        "          SFTConfig.from_dict(a['cfg']))\n"
        "from stylized_dpo.resources import process_status_mb\n"
        "print(process_status_mb('VmHWM'))\n"
    )
    args = {
        "model": str(model_dir),
        "train": str(shards["train"]),
        "test": str(shards["test"]),
        "out": str(tmp_path / "m"),
        "metrics": str(tmp_path / "m.jsonl"),
        "ckpt": str(tmp_path / "ckpt"),
        "cfg": {k: v for k, v in params.items()},
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    # VmHWM (KiB), not ru_maxrss: after exec that keeps the parent's high-water mark
    peak_mb = float(out.stdout.strip().splitlines()[-1])
    assert peak_mb < mem < 4000, (peak_mb, mem)


def test_tokenising_asks_for_more_than_its_measured_peak(toy, tmp_path):
    paths, _, model_dir, _ = toy
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from stylized_dpo.model import load_tokenizer\n"
        "from stylized_dpo.train.shards import write_shard\n"
        "write_shard('sft', sys.argv[1], load_tokenizer(sys.argv[2]), sys.argv[3], sys.argv[4],"
        " 256, 1024)\n"
        "from stylized_dpo.resources import process_status_mb\n"
        "print(process_status_mb('VmHWM'))\n"
    )
    args = [paths["sft_train"], model_dir, tmp_path / "t.parquet", tmp_path / "t.json"]
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    peak_mb = float(out.stdout.strip().splitlines()[-1])
    assert peak_mb < tokenize_mem_mb(paths["sft_train"]) < 4000
    # smol-smoltalk's prepared train split (~830 MB of JSONL): measured at most 2.9 MB per
    # file MB beyond ~600 MB (benchmarks/bench_tokenize_memory.py), where the whole-file Python
    # lists took ~36 MB per file MB (~30 GB)
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as f:
        f.truncate(830 * 2**20)  # a sparse file: only its size is read
    assert 600 + 2.9 * 830 < tokenize_mem_mb(big) < 8000
