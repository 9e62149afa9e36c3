"""Supervised fine-tuning: one plain loop (paper Table 1 hyper-parameters).

The loss is the negative log-likelihood of the assistant answer and its closing `<|im_end|>`,
averaged over the completion tokens of the whole effective batch (all micro-batches of one
optimizer step), so gradient accumulation gives the same gradient as one large batch.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from tqdm import tqdm

from stylized_dpo.hashing import config_fingerprint, files_digest
from stylized_dpo.model import load_model, load_tokenizer, set_chat_eos
from stylized_dpo.train.batching import (
    batch_to,
    collate_chats,
    collate_sft,
    iter_chunks,
    step_schedule,
)
from stylized_dpo.train.checkpoints import (
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
    save_model,
)
from stylized_dpo.train.distributed import Dist, init_distributed
from stylized_dpo.train.logps import completion_logps
from stylized_dpo.train.metrics import MetricsWriter, NullMetrics, Throughput
from stylized_dpo.train.optim import FinetuneConfig, lr_at, set_lr
from stylized_dpo.train.runtime import prepare_model, release_freed_heap, training_process
from stylized_dpo.train.shards import batch_lengths, completion_tokens, keep_share, load_chats
from stylized_dpo.train.tokens import TokenizedChat


@dataclass(frozen=True)
class SFTConfig(FinetuneConfig):
    """SFT hyper-parameters; `from_dict` builds it from the config's `sft` section."""

    section: ClassVar[str] = "sft"

    batch_size: int = 32
    """Examples per forward pass (micro-batch); the effective batch is `batch_size * grad_accum`."""
    lr: float = 2.0e-5
    """Peak learning rate."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay, on weight matrices only."""
    eval_every: int = 100
    """Steps between evaluations on the test split (also at step 0 and at the end)."""
    pack_rows_tokens: int | None = None
    """Pack the chats of each training micro-batch into rows of up to this many tokens (each
    chat its own causal block and positions), so short chats pay no padding; the same loss and
    gradients to float rounding. None: one chat per row."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("SFTConfig.warmup_ratio must be in [0, 1)")
        if self.pack_rows_tokens is not None and self.pack_rows_tokens < 1:
            raise ValueError("SFTConfig.pack_rows_tokens must be >= 1 (or null)")


@torch.no_grad()
def evaluate_sft(
    model: torch.nn.Module,
    chats: Sequence[TokenizedChat],
    batch_size: int,
    pad_id: int,
    device: str,
    dist: Dist | None = None,
) -> float:
    """Mean NLL per completion token over `chats` (sorted by length to pad little); under
    torchrun each process scores every W-th batch and the sums are added up."""
    dist = dist or Dist()
    model.eval()
    lengths = batch_lengths(chats)
    order = sorted(range(len(chats)), key=lengths.__getitem__)
    nll, tokens = 0.0, 0
    for idx in dist.share(list(iter_chunks(order, batch_size))):
        chunk = [chats[i] for i in idx]
        batch = {k: v.to(device) for k, v in collate_chats(chunk, pad_id).items()}
        nll -= completion_logps(model, **batch).sum().item()
        tokens += int(batch["completion_mask"].sum())
    nll, tokens = dist.sum([nll, tokens])
    model.train()
    return nll / tokens


def sft_token_grad(dist: Dist, n_completion: int, weight: float) -> torch.Tensor:
    """The gradient that the loss below gives each completion token's log-prob, before the
    forward pass: autograd's own, on a stand-in of the same expression, so the same float. The
    LM head takes its gradients in the forward pass when it matches (`token_logps`)."""
    stand_in = torch.zeros(1, requires_grad=True)
    dist.backward(-stand_in.sum() / n_completion, weight)
    return stand_in.grad[0]


def train_sft(
    model_dir: str | os.PathLike[str],
    train_path: str | os.PathLike[str],
    test_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    metrics_path: str | os.PathLike[str],
    checkpoint_dir: str | os.PathLike[str],
    config: SFTConfig,
    keep_checkpoints: int = 1,
) -> None:
    """Fine-tune the model in `model_dir` on tokenised shards (or SFTExample JSONL files, see
    `shards.load_chats`); save to `out_dir`.

    Resumes from `checkpoint_dir` when it holds a checkpoint of this exact config and data;
    keeps its last `keep_checkpoints` checkpoints.
    """
    cfg = config
    torch.manual_seed(cfg.seed)
    training_process()  # resident memory flat over the steps; denormals flushed
    dist = init_distributed(cfg.device)
    device = dist.device
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, torch.float32, device)
    prepare_model(model, cfg.gradient_checkpointing, cfg.compile)
    model.train()
    pad_id = tokenizer.pad_token_id

    limits = (cfg.max_prompt_tokens, cfg.max_completion_tokens)
    train = load_chats(train_path, tokenizer, *limits)
    test = load_chats(test_path, tokenizer, *limits)

    schedule = step_schedule(
        batch_lengths(train),
        cfg.batch_size,
        cfg.grad_accum,
        cfg.epochs,
        cfg.max_steps,
        cfg.seed,
    )
    keep_share(train, schedule, dist)
    total_steps = len(schedule)
    warmup_steps = math.ceil(cfg.warmup_ratio * total_steps)
    optimizer = cfg.make_optimizer(model)
    metrics = MetricsWriter(metrics_path) if dist.is_main else NullMetrics()
    logps = dist.logps_fn(model)
    fingerprint = config_fingerprint(
        "sft", cfg.to_dict(), files_digest(model_dir, train_path, test_path)
    )

    step = 0
    if found := load_checkpoint(checkpoint_dir, fingerprint):
        step = restore_checkpoint(*found, model, optimizer, metrics)["step"]
        print(f"resumed from {found[0]} at step {step}")
    print(
        f"{total_steps} steps, {warmup_steps} warmup, effective batch "
        f"{cfg.batch_size * cfg.grad_accum}, device {device}, {dist.world_size} process(es)"
    )

    timer = Throughput(device)
    pbar = tqdm(
        total=total_steps, initial=step, desc="sft", mininterval=5.0, disable=not dist.is_main
    )
    while step < total_steps:
        if step % cfg.eval_every == 0:
            loss = evaluate_sft(model, test, cfg.batch_size, pad_id, device, dist)
            metrics.write({"step": step, "split": "eval", "loss": loss})

        lr = lr_at(step, total_steps, warmup_steps, cfg.lr)
        set_lr(optimizer, lr)
        micro_batches = schedule[step]
        # normalise by the completion tokens of the whole effective batch, not per micro-batch
        n_completion = completion_tokens(train, micro_batches)
        n_tokens, step_loss = 0, 0.0
        timer.restart()
        mine, weight = dist.step_share(micro_batches)
        for j, idx in enumerate(mine):
            chats = [train[i] for i in idx]
            batch = batch_to(collate_sft(chats, pad_id, cfg.pack_rows_tokens), device)
            token_grad = sft_token_grad(dist, n_completion, weight)
            with dist.no_sync(logps, last=j == len(mine) - 1):
                loss = -logps(**batch, token_grad=token_grad).sum() / n_completion
                dist.backward(loss, weight)
            step_loss += loss.item() * weight
            n_tokens += int(sum(len(c.input_ids) for c in chats) * weight)
        step_loss, n_tokens = dist.sum([step_loss, n_tokens])
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        release_freed_heap()
        metrics.write(
            {
                "step": step,
                "split": "train",
                "loss": step_loss,
                "lr": lr,
                "grad_norm": grad_norm.item(),
                "tokens_per_s": timer.tokens_per_s(n_tokens),
            }
        )
        step += 1
        pbar.update(1)
        pbar.set_postfix(loss=f"{step_loss:.4f}", refresh=False)
        if step % cfg.checkpoint_every == 0 and step < total_steps and dist.is_main:
            state = {"step": step, "fingerprint": fingerprint}
            save_checkpoint(
                checkpoint_dir, model, tokenizer, optimizer, state, metrics, keep_checkpoints
            )
    pbar.close()

    loss = evaluate_sft(model, test, cfg.batch_size, pad_id, device, dist)
    metrics.write({"step": total_steps, "split": "eval", "loss": loss})
    print(f"final eval loss {loss:.4f}")
    if dist.is_main:
        set_chat_eos(model, tokenizer)
        save_model(out_dir, model, tokenizer)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
