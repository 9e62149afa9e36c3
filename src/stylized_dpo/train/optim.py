"""Optimizers and learning-rate schedules (set by hand each step, as nanoGPT does: the step is
the whole state)."""

from __future__ import annotations

import math

import torch


def lr_at(
    step: int,
    total_steps: int,
    warmup_steps: int,
    base_lr: float,
    kind: str = "linear",
    min_lr_ratio: float = 0.0,
) -> float:
    """Linear warmup from 0, then linear or cosine decay to `min_lr_ratio * base_lr`.

    Matches transformers' `get_linear_schedule_with_warmup` for kind="linear", min_lr_ratio=0.
    """
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(progress, 1.0)
    if kind == "linear":
        decay = 1.0 - progress
    elif kind == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif kind == "constant":
        decay = 1.0
    else:
        raise ValueError(f"unknown schedule {kind!r}")
    return base_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * decay)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def adamw(
    model: torch.nn.Module, lr: float, betas: tuple[float, float], weight_decay: float
) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not norms or biases), as nanoGPT does."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, foreach=False)
