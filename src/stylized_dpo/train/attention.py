"""The attention of packed pairs: SDPA on two blocks (prompt + chosen causally; the rejected
answer on its prompt and itself), as an attention implementation of transformers."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

PACKED_PAIRS_ATTENTION = "sdpa_packed_pairs"
"""The attention implementation of a model that scores packed pairs: SDPA, plus the two-block
attention of `collate_packed_pairs` batches. Not saved with the model (transformers drops
the implementation from config.json)."""


def packed_pairs_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    rejected_start: int | None = None,
    prompt_width: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention; for packed pairs (`rejected_start` given), two SDPA calls.

    Queries, keys and values are (B, heads, T, D). The first block (prompt + chosen, up to
    `rejected_start`) is plain causal attention (SDPA's `is_causal`: no mask, flash kernels).
    The rejected block's queries see the keys of the prompts (the first `prompt_width`
    positions) and of the rejected block, under `attention_mask` (B, 1, T - rejected_start,
    prompt_width + T - rejected_start): the row's own prompt, and causal within the rejected
    answer. Compared with one (T, T) masked attention, the rejected queries skip the chosen
    answers' keys (but for the chosen tokens of rows with a shorter prompt, masked out).
    """
    if rejected_start is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    cut, width = rejected_start, prompt_width
    first, _ = sdpa_attention_forward(
        module, query[:, :, :cut], key[:, :, :cut], value[:, :, :cut], None, **kwargs
    )
    keys = torch.cat([key[:, :, :width], key[:, :, cut:]], dim=2)
    values = torch.cat([value[:, :, :width], value[:, :, cut:]], dim=2)
    second, _ = sdpa_attention_forward(
        module, query[:, :, cut:], keys, values, attention_mask, **kwargs
    )
    return torch.cat([first, second], dim=1), None  # (B, T, heads, D)


def register_packed_pairs_attention() -> None:
    """Make `PACKED_PAIRS_ATTENTION` known to transformers (again: a no-op), so that a model can
    switch to it; its other calls (no packed pairs) build SDPA's masks."""
    AttentionInterface.register(PACKED_PAIRS_ATTENTION, packed_pairs_attention)
    AttentionMaskInterface.register(PACKED_PAIRS_ATTENTION, sdpa_mask)


def rejected_block_mask(
    prompt_lengths: torch.Tensor, prompt_width: int, rejected_width: int
) -> torch.Tensor:
    """(B, 1, R, prompt_width + R) bool, True = may attend: the rejected block's queries see
    their row's prompt keys and the rejected block causally (padding queries too: never a
    fully masked row, which would make SDPA's softmax NaN)."""
    device = prompt_lengths.device
    prompt = torch.arange(prompt_width, device=device) < prompt_lengths[:, None]  # (B, P)
    causal = torch.ones(rejected_width, rejected_width, dtype=torch.bool, device=device).tril()
    b = prompt_lengths.size(0)
    return torch.cat(
        [prompt[:, None, :].expand(b, rejected_width, -1), causal.expand(b, -1, -1)], dim=-1
    )[:, None]
