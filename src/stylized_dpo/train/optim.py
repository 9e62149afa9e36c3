"""Optimizers, learning-rate schedules (set by hand each step, as nanoGPT does: the step is the
whole state) and the optimisation settings the training configs share."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from stylized_dpo.config import Section


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


class OptimizerConfig(Section):
    """The optimiser of a training config: AdamW on its `lr`, `betas` and `weight_decay`, with
    gradients clipped at `max_grad_norm`.

    The fields are declared by each config, with its own defaults: pretraining writes its
    config's fields in their order to pretrain_config.json, so this base adds no field.
    """

    lr: float
    betas: tuple[float, float]
    weight_decay: float
    max_grad_norm: float

    def make_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        return adamw(model, self.lr, self.betas, self.weight_decay)


@dataclass(frozen=True)
class FinetuneConfig(OptimizerConfig):
    """The settings SFT and DPO share; each adds `lr`, `weight_decay`, `batch_size` and
    `eval_every` (their defaults differ) and its own."""

    epochs: int = 1
    """Passes over the training set (ignored when `max_steps` is set)."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas (paper Table 1; unused by RMSprop)."""
    warmup_ratio: float = 0.1
    """Share of the steps with a linear warmup; then linear decay to 0."""
    max_grad_norm: float = 1.0
    """Gradient clipping threshold (global L2 norm)."""
    max_prompt_tokens: int = 256
    """Examples (DPO: pairs) whose rendered prompt is longer are dropped (counted in the log)."""
    max_completion_tokens: int = 1024
    """Examples whose answer (DPO: longer answer) + `<|im_end|>` is longer are dropped (counted
    in the log)."""
    max_steps: int | None = None
    """When set, the number of optimizer steps (overrides `epochs`, cycling the data)."""
    checkpoint_every: int = 100
    """Steps between resumable checkpoints."""
    seed: int = 0
    """Seeds the data order and torch."""
    device: str = "auto"
    """`auto` (CUDA when available), `cpu` or `cuda`."""
    gradient_checkpointing: bool = False
    """Recompute the trained model's layer activations in the backward pass: less memory, ~1/3
    more compute."""
    compile: bool = False
    """`torch.compile` the decoder (DPO: the policy's and the reference model's): faster on GPU
    after a compile warm-up; last-bit float noise."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be >= 1")
