"""Completion log-probs of chats and preference pairs (plain, packed or several pairs a row),
with the LM head run only where a completion token is predicted, in chunks, in float32."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from stylized_dpo.train.attention import (
    PACKED_PAIRS_ATTENTION,
    PairSegment,
    register_packed_pairs_attention,
    rejected_block_mask,
)
from stylized_dpo.train.runtime import autocast


def completion_logps(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    token_grad: torch.Tensor | None = None,
) -> torch.Tensor:
    """Summed log-probabilities of the completion tokens of each sequence, (B,), float32.

    The backbone runs on the whole sequence, but the LM head runs only at the positions that
    predict a completion token (position t predicts token t+1): full-vocabulary logits for prompt
    and padding tokens are never built. The head and the log-softmax run in float32 outside
    autocast, so bf16 training keeps full-precision log-probs.
    """
    if not completion_mask.any(dim=1).all():
        raise ValueError("a sequence has no completion token: its loss would be undefined")
    if right_padded(attention_mask):
        # Under causal attention no token before the padding ever sees it, so the padding mask
        # changes nothing that is scored, and without it SDPA takes its causal kernel (faster
        # than a masked one, and on CUDA the flash kernel) instead of a masked one.
        attention_mask = None
    hidden = _last_hidden(model, input_ids=input_ids, attention_mask=attention_mask)  # (B, T, H)
    targets_mask = completion_mask[:, 1:].bool()  # (B, T-1): does position t predict a completion?
    h = hidden[:, :-1][targets_mask]  # (N, H), N = completion tokens in the batch
    targets = input_ids[:, 1:][targets_mask]  # (N,)
    row = torch.arange(input_ids.size(0), device=input_ids.device)[:, None].expand_as(targets_mask)
    return _summed_logps(model, h, targets, row[targets_mask], input_ids.size(0), token_grad)


def right_padded(attention_mask: torch.Tensor) -> bool:
    """Whether every row of a (B, T) 0/1 mask is ones followed by zeros (padding on the right)."""
    lengths = attention_mask.sum(dim=1, keepdim=True)
    positions = torch.arange(attention_mask.size(1), device=attention_mask.device)
    return bool(torch.equal(attention_mask.bool(), positions < lengths))


def packed_completion_logps(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    prompt_lengths: torch.Tensor,
    rejected_start: int,
    prompt_width: int,
    logp_index: torch.Tensor,
    logp_targets: torch.Tensor,
    logp_segment: torch.Tensor,
) -> torch.Tensor:
    """`completion_logps` of packed pairs (`collate_packed_pairs`): (2B,), chosen then rejected.

    One forward pass per pair over [prompt, chosen, rejected] gives each answer's tokens exactly
    the attention of their own prompt + answer sequence (`packed_pairs_attention`), so the
    log-probs equal the concatenated forward's (to float rounding), and the prompt's gradient is
    the sum of the two branches'. The model's attention must be SDPA; `PACKED_PAIRS_ATTENTION`
    (SDPA with the packed path) is registered and switched to on first use. On CUDA the prompt +
    chosen block runs SDPA's flash kernel (no mask); the rejected block, under a mask, runs the
    memory-efficient one.
    """
    use_packed_pairs_attention(model)
    mask = rejected_block_mask(prompt_lengths, prompt_width, input_ids.size(1) - rejected_start)
    hidden = _last_hidden(
        model,
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=position_ids,
        rejected_start=rejected_start,
        prompt_width=prompt_width,
    )  # (B, T, H)
    h = hidden.flatten(0, 1)[logp_index]  # (N, H)
    return _summed_logps(model, h, logp_targets, logp_segment, 2 * input_ids.size(0))


def pair_rows_logps(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    pair_segments: tuple[tuple[PairSegment, ...], ...],
    logp_index: torch.Tensor,
    logp_targets: torch.Tensor,
    logp_segment: torch.Tensor,
    n_slots: int,
    token_grad: torch.Tensor | None = None,
) -> torch.Tensor:
    """`completion_logps` of a `collate_pair_rows` batch (chosen then rejected, in the pairs'
    order) or a `collate_chat_rows` one (the chats'), (n_slots,). Each pair's or chat's
    attention is its own (`pair_rows_attention`)."""
    use_packed_pairs_attention(model)
    hidden = _last_hidden(
        model, input_ids=input_ids, position_ids=position_ids, pair_segments=pair_segments
    )  # (R, T, H)
    h = hidden.flatten(0, 1)[logp_index]  # (N, H)
    return _summed_logps(model, h, logp_targets, logp_segment, n_slots, token_grad)


def use_packed_pairs_attention(model: PreTrainedModel) -> None:
    """Switch an SDPA model to `PACKED_PAIRS_ATTENTION` (registered on first use)."""
    implementation = model.config._attn_implementation
    if implementation == "sdpa":
        register_packed_pairs_attention()
        model.set_attn_implementation(PACKED_PAIRS_ATTENTION)
    elif implementation != PACKED_PAIRS_ATTENTION:
        raise ValueError(f"prefix sharing needs the sdpa attention, not {implementation!r}")


def pair_logps(model: PreTrainedModel, **batch: Any) -> torch.Tensor:
    """Chosen then rejected log-probs, (2B,), of a `collate_pairs`, `collate_packed_pairs` or
    `collate_pair_rows` batch (or the completion log-probs of a `collate_chats` or
    `collate_chat_rows` batch)."""
    if "pair_segments" in batch:
        return pair_rows_logps(model, **batch)
    if "logp_index" in batch:
        return packed_completion_logps(model, **batch)  # type: ignore[arg-type]
    return completion_logps(model, **batch)  # type: ignore[arg-type]


def _last_hidden(model: PreTrainedModel, **inputs: Any) -> torch.Tensor:
    """The decoder's last hidden states (bf16 autocast on CUDA; no KV cache): the backbone's
    part of every log-prob here, the LM head left to `_summed_logps`."""
    with autocast(inputs["input_ids"].device.type):
        return model.get_decoder()(**inputs, use_cache=False).last_hidden_state


def _summed_logps(
    model: PreTrainedModel,
    h: torch.Tensor,
    targets: torch.Tensor,
    slots: torch.Tensor,
    n_slots: int,
    token_grad: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sum per slot of log p(target | hidden state): the LM head and log-softmax in float32,
    outside autocast, on the N given rows only (`token_logps`, `token_grad` its)."""
    head = model.get_output_embeddings()
    with torch.autocast(h.device.type, enabled=False):
        token_logps_ = token_logps(h, head.weight, head.bias, targets, token_grad=token_grad)
    return torch.zeros(n_slots, device=h.device).index_add(0, slots, token_logps_)


LOGIT_CHUNK_ELEMENTS = 1 << 25
LM_HEAD_DTYPE = torch.float32
"""The dtype of the LM head's matmuls in `token_logps`; the log-softmax and the gradients
always accumulate in float32. bfloat16 halves the head's cost on a GPU (bench_gpu.py measures
it) at the price of bf16 rounding in the logits; training uses float32."""
"""Logits built at once by `token_logps`: 32 M float32 (128 MB), e.g. 220 tokens of Qwen2.5's
151,936-token vocabulary, or the whole batch of a 2,048-token one."""


def token_logps(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    chunk_tokens: int | None = None,
    token_grad: torch.Tensor | None = None,
) -> torch.Tensor:
    """log softmax(h W^T + b)[target] of each row, (N,) float32, never holding the (N, V) logits.

    The LM head and the log-softmax run in float32 on `chunk_tokens` rows at a time (default:
    `LOGIT_CHUNK_ELEMENTS / V`) and the backward pass recomputes each chunk's logits (the idea
    of Liger's fused linear cross-entropy): one more head matmul instead of keeping N x V
    float32 log-probs, their gradient and a scatter buffer. On CUDA, Liger's fused kernel
    (`liger-kernel`, optional) does the same when installed.

    `token_grad`, a float32 scalar tensor: the gradient each token's log-prob will receive, when
    it is known before the forward pass (SFT's loss, -1/n per completion token: `sft_token_grad`).
    The forward pass then computes the gradients from its own logits, with the backward pass's
    operations in its order, and the backward pass uses them if its incoming gradient is that
    value at every token (bit for bit what recomputing would give), recomputing otherwise: one
    head matmul of four saved.
    """
    liger = _liger_cross_entropy() if h.is_cuda else None
    if liger is not None:
        dtype = LM_HEAD_DTYPE
        out = liger(
            h.to(dtype), weight.to(dtype), targets, None if bias is None else bias.to(dtype)
        )
        return -out.float()
    chunk = chunk_tokens or max(1, LOGIT_CHUNK_ELEMENTS // weight.size(0))
    return _ChunkedTokenLogps.apply(h, weight, bias, targets, chunk, LM_HEAD_DTYPE, token_grad)


def _liger_cross_entropy() -> Any:
    """Per-token cross-entropy of Liger's fused linear kernel, or None when not installed.
    Its per-token (reduction="none") gradients are right from liger-kernel 0.8.5 on."""
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
    except ImportError:
        return None

    def cross_entropy(h, weight, targets, bias):
        out = liger_fused_linear_cross_entropy(h, weight, targets, bias, reduction="none")
        return out[0] if isinstance(out, tuple) else getattr(out, "loss", out)

    return cross_entropy


class _ChunkedTokenLogps(torch.autograd.Function):
    """`token_logps` on CPU (and on CUDA without Liger): chunks of logits (matmuls in `dtype`,
    log-softmax in float32), recomputed in backward unless the forward pass could take the
    gradients already (`token_grad`)."""

    @staticmethod
    def forward(ctx, h, weight, bias, targets, chunk, dtype, token_grad=None):  # type: ignore[override]
        w = weight.to(dtype)
        b = None if bias is None else bias.to(dtype)
        n = h.size(0)
        out = torch.empty(n, dtype=torch.float32, device=h.device)
        lse = torch.empty(n, dtype=torch.float32, device=h.device)
        needs = ctx.needs_input_grad[:3]
        early = None
        if token_grad is not None and any(needs):
            token_grad = token_grad.to(device=h.device, dtype=torch.float32)
            early = _HeadGrads(h, weight, bias, needs)
            g = token_grad.expand(n)
        for s in range(0, n, chunk):
            logits = F.linear(h[s : s + chunk].to(dtype), w, b).float()  # (chunk, V)
            lse[s : s + chunk] = logits.logsumexp(-1)
            picked = logits.gather(1, targets[s : s + chunk, None]).squeeze(1)
            out[s : s + chunk] = picked - lse[s : s + chunk]
            if early is not None:
                early.add_chunk(s, logits, lse, targets, g, w, h, dtype)
        ctx.save_for_backward(h, weight, bias, targets, lse)
        ctx.chunk, ctx.dtype, ctx.token_grad, ctx.early = chunk, dtype, token_grad, early
        # a single chunk (a small vocabulary or batch): keep its softmax, within the chunk's
        # memory budget, rather than recompute the head in backward
        ctx.probs = None
        if early is None and n <= chunk and any(needs):
            ctx.probs = logits.sub_(lse[:, None]).exp_()
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        h, weight, bias, targets, lse = ctx.saved_tensors
        grads, ctx.early = ctx.early, None  # consumed: a second backward recomputes
        g = grad_out.float()
        if grads is None or not bool((g == ctx.token_grad).all()):
            grads = _HeadGrads(h, weight, bias, ctx.needs_input_grad[:3])
            with torch.autocast(h.device.type, enabled=False):
                dtype = ctx.dtype
                w = weight.to(dtype)
                b = None if bias is None else bias.to(dtype)
                for s in range(0, h.size(0), ctx.chunk):
                    if ctx.probs is not None:
                        probs, ctx.probs = ctx.probs, None
                    else:
                        probs = F.linear(h[s : s + ctx.chunk].to(dtype), w, b).float()
                        probs.sub_(lse[s : s + ctx.chunk, None]).exp_()
                    grads.add_chunk(s, probs, None, targets, g, w, h, dtype)
        return (*grads.result(h, weight, bias), None, None, None, None)


class _HeadGrads:
    """The LM head's gradients, accumulated chunk by chunk in one order whether the forward
    pass takes them (`token_grad`) or the backward pass does."""

    def __init__(self, h, weight, bias, needs) -> None:
        need_h, need_w, need_b = needs
        self.grad_h = torch.empty(h.shape, dtype=torch.float32, device=h.device) if need_h else None
        self.grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_w else None
        self.grad_b = torch.zeros_like(bias, dtype=torch.float32) if need_b else None

    def add_chunk(self, s, logits, lse, targets, g, w, h, dtype) -> None:
        """The chunk of rows from `s`: `logits` (chunk, V) float32, consumed in place (given
        `lse`: the raw logits; without it: the softmax already)."""
        n = logits.size(0)
        # d logp[t] / d logits = onehot(t) - softmax: built in place in the logits
        dlogits = logits if lse is None else logits.sub_(lse[s : s + n, None]).exp_()
        gc = g[s : s + n, None]
        dlogits.mul_(-gc).scatter_add_(1, targets[s : s + n, None], gc)
        if dtype != torch.float32:
            dlogits = dlogits.to(dtype)
        hc = h[s : s + n].to(dtype)
        if self.grad_h is not None:
            self.grad_h[s : s + n] = dlogits @ w
        if self.grad_w is not None and dtype == torch.float32:
            self.grad_w.addmm_(dlogits.t(), hc)  # in place: no (V, H) temporary
        elif self.grad_w is not None:
            self.grad_w += dlogits.t() @ hc
        if self.grad_b is not None:
            self.grad_b += dlogits.sum(0, dtype=torch.float32)

    def result(self, h, weight, bias) -> tuple:
        return (
            None if self.grad_h is None else self.grad_h.to(h.dtype),
            None if self.grad_w is None else self.grad_w.to(weight.dtype),
            None if self.grad_b is None else self.grad_b.to(bias.dtype),
        )
