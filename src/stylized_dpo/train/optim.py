"""Optimizers, learning-rate schedules (set by hand each step, as nanoGPT does: the step is the
whole state) and the optimisation settings the training configs share."""

from __future__ import annotations

import math
from collections.abc import Iterator
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
    return ChunkedAdamW(groups, lr=lr, betas=betas)


OPTIMIZER_CHUNK_ELEMENTS = 1 << 18
"""Elements of a parameter updated at once by `ChunkedAdamW` and `ChunkedRMSprop`: 256 K (1 MB
in float32), so a step's temporaries stay small beside Qwen2.5's 136 M-element embedding, and
a chunk's elementwise passes run in cache: faster than torch's single-tensor step on one
thread, and than 4 M chunks (`benchmarks/bench_optimizer.py`)."""


def _chunks(*tensors: torch.Tensor, elements: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """The same flat slices of same-shaped contiguous tensors, `elements` at a time (the whole
    tensors when not contiguous)."""
    if not all(t.is_contiguous() for t in tensors):
        yield tensors
        return
    flat = [t.view(-1) for t in tensors]
    for start in range(0, flat[0].numel(), elements):
        yield tuple(t[start : start + elements] for t in flat)


class _ChunkedSteps(torch.optim.Optimizer):
    """The loop of torch's single-tensor optimizers over groups and parameters with gradients;
    a subclass updates one parameter in `_update`, chunk by chunk (`_chunks`)."""

    chunk_elements = OPTIMIZER_CHUNK_ELEMENTS
    supported_only: dict[str, object] = {}
    """Options whose other values torch's step supports and `_update` does not."""

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        name = type(self).__name__
        if closure is not None:
            raise ValueError(f"{name}.step takes no closure")
        for group in self.param_groups:
            plain = {"maximize": False, "differentiable": False, **self.supported_only}
            for option, value in plain.items():
                if group.get(option, value) != value:
                    raise ValueError(f"{name}: {option}={group[option]!r} is not supported")
            for param in group["params"]:
                if param.grad is not None:
                    self._update(group, param, self.state[param])

    def _update(self, group: dict, param: torch.Tensor, state: dict) -> None:
        raise NotImplementedError


class ChunkedAdamW(_ChunkedSteps, torch.optim.AdamW):
    """torch's AdamW, its single-tensor step taken `OPTIMIZER_CHUNK_ELEMENTS` elements at a time.

    The same operations in the same order on each element as `torch.optim.AdamW(foreach=False)`,
    so the same bits (elementwise kernels round each element alike whatever the slice) and the
    same state dict, but the step's temporaries (the second moment's square root and the
    denominator) are one chunk each instead of two copies of the largest parameter (2 x 545 MB
    for Qwen2.5-0.5B's embedding, the peak of a small-batch step).
    """

    supported_only = {"amsgrad": False, "capturable": False, "fused": None}

    def _update(self, group: dict, param: torch.Tensor, state: dict) -> None:
        lr, (beta1, beta2) = group["lr"], group["betas"]
        eps, weight_decay = group["eps"], group["weight_decay"]
        if not state:
            state["step"] = torch.tensor(0.0, dtype=torch.get_default_dtype())
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["step"] += 1
        step = state["step"].item()
        step_size = lr / (1 - beta1**step)
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        for p, grad, exp_avg, exp_avg_sq in _chunks(
            param, param.grad, state["exp_avg"], state["exp_avg_sq"], elements=self.chunk_elements
        ):
            if weight_decay != 0:
                p.mul_(1 - lr * weight_decay)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
            p.addcdiv_(exp_avg, denom, value=-step_size)


class ChunkedRMSprop(_ChunkedSteps, torch.optim.RMSprop):
    """torch's RMSprop (no momentum, not centred), its single-tensor step taken
    `OPTIMIZER_CHUNK_ELEMENTS` elements at a time: the same bits and state dict as
    `torch.optim.RMSprop(foreach=False)`, with chunk-sized temporaries (the L2-penalised
    gradient and the denominator) instead of two copies of the largest parameter."""

    supported_only = {"momentum": 0, "centered": False, "capturable": False}

    def _update(self, group: dict, param: torch.Tensor, state: dict) -> None:
        lr, alpha = group["lr"], group["alpha"]
        eps, weight_decay = group["eps"], group["weight_decay"]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.get_default_dtype())
            state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["step"] += 1
        for p, grad, square_avg in _chunks(
            param, param.grad, state["square_avg"], elements=self.chunk_elements
        ):
            if weight_decay != 0:
                grad = grad.add(p, alpha=weight_decay)
            square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
            p.addcdiv_(grad, square_avg.sqrt().add_(eps), value=-lr)


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
