"""Pretraining of the tiny base model: its tokenizer, then a plain causal-LM loop.

This stage exists only because the hub is out of reach: it makes a small model that knows the
world's facts, as Qwen2.5-0.5B knows the real world's. Each batch row is a block of documents
sampled at random and packed end to end (separated by `<|endoftext|>`). A curriculum option
restricts the first steps to documents about a few entities: the prototype sat on a loss plateau
(~1.5) until facts "clicked", and starting narrow made every seed escape it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import Qwen2ForCausalLM

from stylized_dpo.hashing import config_fingerprint, files_digest
from stylized_dpo.io import iter_json_lines
from stylized_dpo.model import ENDOFTEXT, load_tokenizer, tiny_qwen2_config
from stylized_dpo.train.checkpoints import (
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
    save_model,
)
from stylized_dpo.train.distributed import init_distributed
from stylized_dpo.train.metrics import MetricsWriter, NullMetrics, Throughput
from stylized_dpo.train.optim import OptimizerConfig, lr_at, set_lr
from stylized_dpo.train.runtime import autocast


@dataclass(frozen=True)
class PretrainConfig(OptimizerConfig):
    """Pretraining hyper-parameters: the config's `base_model.pretrain` section."""

    section: ClassVar[str] = "base_model.pretrain"

    steps: int = 800
    """Optimizer steps."""
    batch_size: int = 16
    """Blocks per step."""
    block_size: int = 128
    """Tokens per block."""
    lr: float = 1.0e-2
    """Peak learning rate (high: the model is tiny)."""
    min_lr_ratio: float = 0.1
    """The cosine schedule decays to `min_lr_ratio * lr`."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay, on weight matrices only."""
    warmup_steps: int = 50
    """Linear warmup steps."""
    max_grad_norm: float = 1.0
    """Gradient clipping threshold (global L2 norm)."""
    curriculum_steps: int = 0
    """For the first steps, sample only documents about `curriculum_entities` entities."""
    curriculum_entities: int = 25
    """Number of entities seen during the curriculum."""
    checkpoint_every: int = 200
    """Steps between resumable checkpoints."""
    seed: int = 0
    """Seeds the initialisation, the curriculum's entities and the block sampling."""
    device: str = "auto"
    """`auto` (CUDA when available), `cpu` or `cuda`."""


def sample_blocks(
    docs: list[list[int]], pool: list[int], batch_size: int, block_size: int, g: torch.Generator
) -> torch.Tensor:
    """(batch_size, block_size + 1) tokens: each row packs random documents from `pool`."""
    rows = []
    for _ in range(batch_size):
        row: list[int] = []
        while len(row) < block_size + 1:
            row += docs[pool[int(torch.randint(len(pool), (1,), generator=g))]]
        rows.append(row[: block_size + 1])
    return torch.tensor(rows, dtype=torch.long)


def pretrain_base(
    corpus_path: str | os.PathLike[str],
    tokenizer_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    metrics_path: str | os.PathLike[str],
    checkpoint_dir: str | os.PathLike[str],
    architecture: dict,
    config: PretrainConfig,
    keep_checkpoints: int = 1,
) -> None:
    """Pretrain a tiny Qwen2 with the tokenizer in `tokenizer_dir` on the corpus."""
    cfg = config
    torch.manual_seed(cfg.seed)
    dist = init_distributed(cfg.device)
    device = dist.device
    corpus = [row for _, row in iter_json_lines(corpus_path)]
    tokenizer = load_tokenizer(tokenizer_dir)
    model = Qwen2ForCausalLM(tiny_qwen2_config(tokenizer, **architecture)).to(device)
    model.config._attn_implementation = "sdpa"
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"tokenizer: {len(tokenizer)} tokens; model: {n_params / 1e6:.2f} M parameters")

    eos = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    docs = [ids + [eos] for ids in tokenizer([r["text"] for r in corpus])["input_ids"]]
    print(f"corpus: {len(docs)} documents, {sum(map(len, docs))} tokens")
    g = torch.Generator().manual_seed(cfg.seed)
    everything = list(range(len(docs)))
    curriculum = everything
    if cfg.curriculum_steps > 0:
        entities = sorted({r["entity"] for r in corpus})
        chosen = torch.randperm(len(entities), generator=g)[: cfg.curriculum_entities]
        chosen_set = {entities[i] for i in chosen.tolist()}
        curriculum = [i for i, r in enumerate(corpus) if r["entity"] in chosen_set]
        print(
            f"curriculum: {cfg.curriculum_steps} steps on {len(chosen_set)} entities "
            f"({len(curriculum)} documents)"
        )

    optimizer = cfg.make_optimizer(model)
    metrics = MetricsWriter(metrics_path) if dist.is_main else NullMetrics()
    if dist.enabled and cfg.batch_size < dist.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} < {dist.world_size} processes")
    forward = dist.wrap(model) if dist.enabled else model
    fingerprint = config_fingerprint(
        "pretrain", cfg.to_dict(), architecture, files_digest(corpus_path, tokenizer_dir)
    )
    step = 0
    if found := load_checkpoint(checkpoint_dir, fingerprint):
        state = restore_checkpoint(*found, model, optimizer, metrics)
        step = state["step"]
        g.set_state(state["sampler_rng"])
        print(f"resumed from {found[0]} at step {step}")

    timer = Throughput(device)
    pbar = tqdm(
        total=cfg.steps, initial=step, desc="pretrain", mininterval=5.0, disable=not dist.is_main
    )
    while step < cfg.steps:
        lr = lr_at(step, cfg.steps, cfg.warmup_steps, cfg.lr, "cosine", cfg.min_lr_ratio)
        set_lr(optimizer, lr)
        pool = curriculum if step < cfg.curriculum_steps else everything
        timer.restart()
        block = sample_blocks(docs, pool, cfg.batch_size, cfg.block_size, g).to(device)
        x, y = block[:, :-1], block[:, 1:]
        n_tokens = x.numel()
        if dist.enabled:  # every process samples the same blocks and trains on every W-th row
            x, y = x[dist.rank :: dist.world_size], y[dist.rank :: dist.world_size]
        with autocast(device):
            logits = forward(input_ids=x, use_cache=False).logits  # (B, T, V): every token trains
        if dist.enabled:  # this process's share of the mean over all processes' tokens
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum")
            loss = loss / n_tokens
        else:
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        dist.backward(loss)
        if dist.enabled:  # the logged loss: the mean over all processes' tokens
            loss = torch.tensor(dist.sum([loss.item()])[0])
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        metrics.write(
            {
                "step": step,
                "split": "train",
                "loss": loss.item(),
                "lr": lr,
                "grad_norm": grad_norm.item(),
                "tokens_per_s": timer.tokens_per_s(n_tokens),
            }
        )
        step += 1
        pbar.update(1)
        pbar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if step % cfg.checkpoint_every == 0 and step < cfg.steps and dist.is_main:
            state = {"step": step, "fingerprint": fingerprint, "sampler_rng": g.get_state()}
            save_checkpoint(
                checkpoint_dir, model, tokenizer, optimizer, state, metrics, keep_checkpoints
            )
    pbar.close()

    if not dist.is_main:
        return
    save_model(out_dir, model, tokenizer)
    with open(os.path.join(out_dir, "pretrain_config.json"), "w") as f:
        json.dump(
            {
                "config": cfg.to_dict(),
                "vocab_size": len(tokenizer),
                "architecture": architecture,
                "n_params": n_params,
            },
            f,
            indent=2,
        )
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
