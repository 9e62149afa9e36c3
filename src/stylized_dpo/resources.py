"""Host memory (`mem_mb`) of the training and tokenising jobs, from their real inputs.

A job's memory follows from what it loads: the model (parameter count read from the
safetensors headers, shape from config.json), the tokenised shards (token count read from the
Parquet metadata; the trainers hold them as int32 arrays, `train/shards.py`) and, for training
on a CPU, the optimizer state and the activations of one micro-batch. Rules call `train_mem_mb`
as an input function (`mem_mb=lambda wildcards, input: ...`), so the value is computed when the
job's inputs exist (Snakemake shows `<TBD>` in a dry run before that) and a profile passes it to
the scheduler (`--mem` under slurm).

Each term is an upper estimate of a measured quantity; `benchmarks/bench_shard_memory.py`
measures the shard term (4.9 bytes per token at smol-smoltalk's 460k chats, against ~56 for the
Python lists it replaced).
"""

from __future__ import annotations

import errno
import json
import math
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MB = 2**20
RUNTIME_MB = {"cpu": 1000, "cuda": 3500}
"""Per process: Python, torch and transformers imported (+ the CUDA context and kernels)."""
SHARD_BYTES_PER_TOKEN = 6
"""int32 ids plus offsets and lengths; measured 4.9 at 460k chats (the benchmark above)."""
SHARD_READ_MB = 300
"""Per process: Arrow's decode buffers while a shard is read, row group by row group
(measured ~140 MB, whatever the shard's size)."""
ACTIVATION_BYTES = 40
"""fp32 bytes per token, layer and hidden unit kept for the backward pass (attention and
MLP inputs and outputs, norms, the SwiGLU's wider intermediate), CPU training only."""
HEADROOM = 1.25
TOKENIZE_FIXED_MB = 1000
"""A tokenise job beyond the runtime: the tokenizer (Qwen2.5's 151k vocabulary) and one chunk's
ids (`shards.write_shard` tokenises 2,048 records at a time)."""
TOKENIZE_PER_FILE_MB = 4
"""MB per MB of the records file: the records held as Python objects, plus the lengths kept
for the card. `benchmarks/bench_tokenize_memory.py` measures 2.9 from 20k to 100k chats with a
small vocabulary (1.6 with Qwen2.5's, which makes fewer tokens); the whole-file Python lists
that chunked tokenisation replaced took 36.5 MB per file MB at 20k chats (9.1 chunked)."""


def _require(path: str | os.PathLike[str]) -> Path:
    """The path, or FileNotFoundError naming it as the rule's input (Snakemake then shows the
    resource as <TBD> until the upstream job has made it)."""
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "input not made yet", str(path))
    return Path(path)


def model_parameters(model_dir: str | os.PathLike[str]) -> int:
    """Parameter count of a saved model, from its safetensors headers (no weight is read)."""
    files = sorted(_require(model_dir).glob("*.safetensors"))
    if not files:
        raise ValueError(f"{model_dir}: no *.safetensors weights to size the job from")
    total = 0
    for file in files:
        with open(file, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        total += sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    return total


def model_shape(model_dir: str | os.PathLike[str]) -> dict[str, int]:
    """hidden_size, num_hidden_layers and vocab_size from the model's config.json."""
    config = json.loads((_require(model_dir) / "config.json").read_text(encoding="utf-8"))
    config = config.get("text_config", config)
    return {k: int(config[k]) for k in ("hidden_size", "num_hidden_layers", "vocab_size")}


def shard_stats(path: str | os.PathLike[str]) -> dict[str, int]:
    """A tokenised shard's `tokens` (from the Parquet metadata: no row is read) and its longest
    prompt and completion (`max_prompt`, `max_completion`, from the card in its metadata)."""
    import pyarrow.parquet as pq

    from stylized_dpo.records import META_KEY

    meta = pq.read_metadata(_require(path))
    tokens = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            if column.path_in_schema.endswith("_ids.list.element"):
                tokens += column.num_values
    card = json.loads((meta.metadata or {})[META_KEY])
    answers = [k for k in card if k.endswith("_tokens") and isinstance(card[k], dict)]
    completions = [card[k]["max"] for k in answers if k != "prompt_tokens" and card[k]]
    return {
        "tokens": tokens,
        "max_prompt": int(card["prompt_tokens"].get("max", 0)),
        "max_completion": int(max(completions, default=0)),
    }


CPU_TRAINABLE_PARAMS = 100_000_000
"""A GPU job with device `auto` and a model larger than this is sized for the GPU node it is sent
to even when the machine running Snakemake (a login node) has no GPU: nobody trains it on a CPU."""


def _on_gpu(device: str, n_params: int) -> bool:
    if device != "auto":
        return device.startswith("cuda")
    if n_params > CPU_TRAINABLE_PARAMS:
        return True
    import torch

    return torch.cuda.is_available()


def tokenize_mem_mb(records_path: str | os.PathLike[str]) -> int:
    """`mem_mb` of a job that tokenises one records file into a shard."""
    file_mb = _require(records_path).stat().st_size / MB
    fixed = RUNTIME_MB["cpu"] + TOKENIZE_FIXED_MB
    return math.ceil(HEADROOM * (fixed + TOKENIZE_PER_FILE_MB * file_mb))


def train_mem_mb(
    stage: str,
    model_dir: str | os.PathLike[str],
    shards: Sequence[str | os.PathLike[str]],
    params: dict[str, Any],
    gpus: int,
) -> int:
    """`mem_mb` of a `pretrain`-free training job: `sft`, `dpo` or `reference_logps`.

    `params` is the job's config section (batch_size, device, and for DPO `reference`); `gpus`
    its gpu resource (torchrun processes when > 1). A micro-batch is sized at the shards'
    longest prompt and completion.
    """
    n_params, shape = model_parameters(model_dir), model_shape(model_dir)
    stats = [shard_stats(p) for p in shards]
    longest = {
        "max_prompt_tokens": max(s["max_prompt"] for s in stats),
        "max_completion_tokens": max(s["max_completion"] for s in stats),
    }
    return memory_mb(
        stage,
        n_params,
        shape,
        sum(s["tokens"] for s in stats),
        {**params, **longest},
        gpus,
    )


def memory_mb(
    stage: str,
    n_params: int,
    shape: dict[str, int],
    tokens: int,
    params: dict[str, Any],
    gpus: int,
) -> int:
    """`train_mem_mb` from the numbers (see there); `params` holds the longest prompt and
    completion as `max_prompt_tokens` and `max_completion_tokens`."""
    if stage not in ("sft", "dpo", "reference_logps"):
        raise ValueError(f"unknown training stage {stage!r}")
    on_gpu = gpus >= 1 and _on_gpu(params.get("device", "auto"), n_params)
    procs = max(1, gpus)
    trains = stage != "reference_logps"
    models = 1 + (stage == "dpo" and params.get("reference") == "model")
    weights = 4 * n_params  # fp32 master weights; every process loads them through the host
    if on_gpu:
        per_process = RUNTIME_MB["cuda"] * MB + models * weights
        # rank 0 writes checkpoints: weights and AdamW's two moments pass through host memory
        once = 3 * weights if trains else 0
    else:
        sequences = params["batch_size"] * (2 if stage != "sft" else 1)
        seq_len = params["max_prompt_tokens"] + params["max_completion_tokens"]
        micro_tokens = sequences * seq_len
        activations = (
            micro_tokens * shape["num_hidden_layers"] * shape["hidden_size"] * ACTIVATION_BYTES
        )
        # full-vocabulary logits at completion positions: logits, log-softmax and its gradient
        logits = sequences * params["max_completion_tokens"] * shape["vocab_size"] * 4 * 3
        optimizer = 3 * weights if trains else 0  # gradients and two AdamW moments
        per_process = RUNTIME_MB["cpu"] * MB + models * weights + optimizer + activations + logits
        once = weights if trains else 0  # a checkpoint's copy of the weights being written
    data = SHARD_BYTES_PER_TOKEN * tokens + procs * SHARD_READ_MB * MB
    return math.ceil(HEADROOM * (procs * per_process + once + data) / MB)


def process_status_mb(key: str = "VmHWM") -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MB: `VmHWM` is the
    peak RSS of this process alone (ru_maxrss keeps the parent's high-water mark after exec),
    `VmRSS` the current one."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(f"/proc/self/status has no {key}")
