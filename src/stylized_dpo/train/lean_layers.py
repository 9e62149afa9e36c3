"""The gated MLP and the RMSNorm of Qwen2/Llama-style decoders, keeping fewer activations for
the backward pass and computing bit-identical gradients.

Autograd keeps four [tokens x intermediate] tensors of each layer's MLP, `down(silu(gate(x)) *
up(x))`, for backward: the gate and up projections, their SiLU and their product. Those are
about three quarters of a Qwen2.5 layer's saved activations (intermediate 4,864 against hidden
896). `LeanSwiGLU` keeps only the gate and up projections and recomputes the SiLU and the
product in backward (two elementwise ops: no layer is recomputed, unlike activation
checkpointing). Each RMSNorm keeps its input, its 1/rms and its normalised input (for the
weight's gradient); `WeightTimesNormalized` recomputes the last from the first two, which stay
saved anyway. Both backward passes call the same kernels in the same order as autograd's on
the stock modules, so parameters, losses and gradients are equal bit for bit in float32. Under
bf16 autocast `LeanSwiGLU` casts as autocast does.
"""

from __future__ import annotations

from types import MethodType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import SiLUActivation
from transformers.models.llama.modeling_llama import LlamaRMSNorm
from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm

SILU = (nn.SiLU, SiLUActivation)


class LeanSwiGLU(torch.autograd.Function):
    """`down(silu(x @ gate.T) * (x @ up.T))` saving x, the gate and the up projection."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, gate: torch.Tensor, up: torch.Tensor, down: torch.Tensor
    ) -> torch.Tensor:
        g = F.linear(x, gate)
        u = F.linear(x, up)
        ctx.save_for_backward(x, g, u, gate, up, down)
        return F.linear(F.silu(g) * u, down)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # The order of autograd's own backward through matmul (mm on 2-D views), mul and silu;
        # weights and x in the activations' dtype, as autocast ran the forward.
        x, g, u, gate, up, down = ctx.saved_tensors
        dtype = g.dtype
        s = F.silu(g)
        p = s * u
        grad_out = grad_out.reshape(-1, grad_out.size(-1))
        grad_down = grad_out.t().mm(p.reshape(-1, p.size(-1)))
        del p
        grad_p = grad_out.mm(down.to(dtype)).view(g.shape)
        grad_up_out = grad_p * s
        grad_gate_out = torch.ops.aten.silu_backward(grad_p * u, g)
        del s, grad_p
        x_flat = x.to(dtype).reshape(-1, x.size(-1))
        grad_gate_out = grad_gate_out.reshape(-1, grad_gate_out.size(-1))
        grad_up_out = grad_up_out.reshape(-1, grad_up_out.size(-1))
        grad_gate = grad_gate_out.t().mm(x_flat)
        grad_up = grad_up_out.t().mm(x_flat)
        grad_x = grad_gate_out.mm(gate.to(dtype)).to(x.dtype) + grad_up_out.mm(up.to(dtype)).to(
            x.dtype
        )
        return grad_x.view(x.shape), grad_gate, grad_up, grad_down


def _lean_forward(mlp: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return LeanSwiGLU.apply(x, mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight)


def is_swiglu(module: nn.Module) -> bool:
    """A `down(silu(gate(x)) * up(x))` MLP without biases (Qwen2, Llama, Mistral)."""
    projections = [getattr(module, name, None) for name in ("gate_proj", "up_proj", "down_proj")]
    return isinstance(getattr(module, "act_fn", None), SILU) and all(
        isinstance(p, nn.Linear) and p.bias is None for p in projections
    )


class WeightTimesNormalized(torch.autograd.Function):
    """`weight * normalized` where `normalized = x * inv_rms` is recomputed in backward from x
    and inv_rms (detached here: their own gradients flow through the graph that made
    `normalized`), so `normalized` itself is not kept."""

    @staticmethod
    def forward(
        ctx: Any,
        weight: torch.Tensor,
        normalized: torch.Tensor,
        x: torch.Tensor,
        inv_rms: torch.Tensor,
    ) -> torch.Tensor:
        ctx.save_for_backward(weight, x, inv_rms)
        ctx.dtype = normalized.dtype
        return weight * normalized

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weight, x, inv_rms = ctx.saved_tensors
        normalized = (x * inv_rms).to(ctx.dtype)
        grad_weight = (grad_out * normalized).sum_to_size(weight.shape)
        return grad_weight, grad_out * weight, None, None


RMS_NORMS = (Qwen2RMSNorm, LlamaRMSNorm)  # the same forward: weight * (x / rms(x))


def _lean_rms_norm_forward(norm: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    # Qwen2RMSNorm.forward's ops, the last one through WeightTimesNormalized
    input_dtype = hidden_states.dtype
    x = hidden_states.to(torch.float32)
    variance = x.pow(2).mean(-1, keepdim=True)
    inv_rms = torch.rsqrt(variance + norm.variance_epsilon)
    normalized = x * inv_rms
    return WeightTimesNormalized.apply(
        norm.weight, normalized.to(input_dtype), x.detach(), inv_rms.detach()
    )


class TiedEmbeddingRowSums(torch.autograd.Function):
    """`F.embedding(ids, weight)` whose weight gradient is the sum per distinct token, a
    coalesced sparse tensor, rather than a dense (V, H) one.

    Autograd then adds it in place into the dense gradient that the tied LM head gives the same
    weight, where the stock backward first builds a zero (V, H) tensor, adds each token's row
    in order (skipping `padding_idx`) and then adds that whole tensor: a 545 MB temporary for
    Qwen2.5-0.5B, at the end of the backward pass, when every gradient is resident. The sums
    run in the stock kernel's order from zero (`index_add_`), so the head's gradient plus them
    is the same, bit for bit.
    """

    @staticmethod
    def forward(
        ctx: Any, ids: torch.Tensor, weight: torch.Tensor, padding_idx: int | None
    ) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.weight_shape, ctx.padding_idx = weight.shape, padding_idx
        return F.embedding(ids, weight, padding_idx)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (ids,) = ctx.saved_tensors
        ids = ids.reshape(-1)
        grad_out = grad_out.reshape(-1, grad_out.size(-1))
        if ctx.padding_idx is not None:
            kept = ids != ctx.padding_idx
            ids, grad_out = ids[kept], grad_out[kept]
        rows, slot = torch.unique(ids, return_inverse=True)
        sums = grad_out.new_zeros(rows.numel(), grad_out.size(-1)).index_add_(0, slot, grad_out)
        grad_weight = torch.sparse_coo_tensor(
            rows[None], sums, ctx.weight_shape, is_coalesced=True, check_invariants=False
        )
        return None, grad_weight, None


def _row_sums_embedding_forward(embedding: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    if embedding.weight.is_cuda or not torch.is_grad_enabled():
        # a GPU has room for the dense gradient, and CUDA's index_add_ would sum in a
        # nondeterministic order
        return F.embedding(ids, embedding.weight, embedding.padding_idx)
    return TiedEmbeddingRowSums.apply(ids, embedding.weight, embedding.padding_idx)


def use_row_sums_embedding(model: nn.Module) -> bool:
    """Give `model`'s input embedding the gradient of `TiedEmbeddingRowSums` when it is tied to
    the LM head (a sparse gradient alone would reach the optimizer); returns whether it did."""
    embedding, head = model.get_input_embeddings(), model.get_output_embeddings()
    stock = type(embedding) is nn.Embedding and not (
        embedding.max_norm or embedding.scale_grad_by_freq or embedding.sparse
    )
    if not (stock and head is not None and head.weight is embedding.weight):
        return False
    embedding.forward = MethodType(_row_sums_embedding_forward, embedding)
    return True


def use_lean_layers(model: nn.Module) -> int:
    """Run every SwiGLU MLP of `model` through `LeanSwiGLU` and every Qwen2/Llama RMSNorm
    through `WeightTimesNormalized` (parameters and saved files are unchanged); returns how
    many modules were switched."""
    switched = 0
    for module in model.modules():
        if is_swiglu(module):
            module.forward = MethodType(_lean_forward, module)
        elif type(module) in RMS_NORMS:
            module.forward = MethodType(_lean_rms_norm_forward, module)
        else:
            continue
        switched += 1
    return switched
