"""The attention of packed pairs: SDPA on two blocks (prompt + chosen causally; the rejected
answer on its prompt and itself), for one pair a row or several, as an attention
implementation of transformers."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

PACKED_PAIRS_ATTENTION = "sdpa_packed_pairs"
"""The attention implementation of a model that scores packed pairs: SDPA, plus the two-block
attention of `collate_packed_pairs` and `collate_pair_rows` batches. Not saved with the model
(transformers drops the implementation from config.json)."""

PairSegment = tuple[int, int, int, int]
"""Where a pair sits in a row of `collate_pair_rows`: (offset, prompt, chosen, rejected
lengths); the pair is [prompt, chosen, rejected] from the offset on. A chat of
`collate_chat_rows`: (offset, length, 0, 0), one causal block."""


def packed_pairs_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    rejected_start: int | None = None,
    prompt_width: int | None = None,
    pair_segments: tuple[tuple[PairSegment, ...], ...] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention; for packed pairs (`rejected_start` given), two SDPA calls;
    for rows of several pairs (`pair_segments` given), `pair_rows_attention`.

    Queries, keys and values are (B, heads, T, D). The first block (prompt + chosen, up to
    `rejected_start`) is plain causal attention (SDPA's `is_causal`: no mask, flash kernels).
    The rejected block's queries see the keys of the prompts (the first `prompt_width`
    positions) and of the rejected block, under `attention_mask` (B, 1, T - rejected_start,
    prompt_width + T - rejected_start): the row's own prompt, and causal within the rejected
    answer. Compared with one (T, T) masked attention, the rejected queries skip the chosen
    answers' keys (but for the chosen tokens of rows with a shorter prompt, masked out).
    """
    if pair_segments is not None:
        return pair_rows_attention(module, query, key, value, pair_segments, **kwargs), None
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


def pair_rows_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    pair_segments: tuple[tuple[PairSegment, ...], ...],
    **kwargs: Any,
) -> torch.Tensor:
    """The attention of `collate_pair_rows` rows, (R, T, heads, D): two SDPA calls per pair.

    Each pair's prompt + chosen block attends causally to itself (SDPA's `is_causal`), its
    rejected answer (if any: chats have none) to its prompt and causally to itself, as
    `packed_pairs_attention` does for a row of one pair; padding after a row's last pair gets
    zeros (nothing attends to it). The same result as one SDPA call under `pair_rows_mask` (to
    float rounding), at the cost of each pair's own blocks: one masked (T, T) call scores every
    pair against every other pair's keys, 4.3x the CPU time of these calls for three pairs in
    2,304 tokens at Qwen2.5-0.5B's attention shape (forward + backward, one thread).
    """
    rows = []
    for r, segments in enumerate(pair_segments):
        q, k, v = query[r : r + 1], key[r : r + 1], value[r : r + 1]
        pieces, end = [], 0
        for offset, n_p, n_c, n_r in segments:
            first, rejected = slice(offset, offset + n_p + n_c), offset + n_p + n_c
            chosen_block, _ = sdpa_attention_forward(
                module, q[:, :, first], k[:, :, first], v[:, :, first], None, **kwargs
            )
            pieces.append(chosen_block)
            end = rejected + n_r
            if not n_r:
                continue
            prompt, answer = slice(offset, offset + n_p), slice(rejected, rejected + n_r)
            keys = torch.cat([k[:, :, prompt], k[:, :, answer]], dim=2)
            values = torch.cat([v[:, :, prompt], v[:, :, answer]], dim=2)
            mask = rejected_block_mask(torch.tensor([n_p], device=q.device), n_p, n_r)
            rejected_block, _ = sdpa_attention_forward(
                module, q[:, :, answer], keys, values, mask, **kwargs
            )
            pieces.append(rejected_block)
        if end < q.size(2):
            pieces.append(chosen_block.new_zeros(1, q.size(2) - end, *chosen_block.shape[2:]))
        rows.append(torch.cat(pieces, dim=1))
    return torch.cat(rows)


def pair_rows_mask(pair_segments: tuple[tuple[PairSegment, ...], ...], width: int) -> torch.Tensor:
    """(R, 1, width, width) bool, True = may attend: the block-diagonal mask that
    `pair_rows_attention` computes in blocks. Each pair's prompt and chosen answer see the
    prompt and chosen tokens before them, its rejected answer its prompt and its own earlier
    tokens, never another pair; a padding token sees itself only (no softmax row is empty)."""
    mask = torch.zeros((len(pair_segments), 1, width, width), dtype=torch.bool)
    for r, segments in enumerate(pair_segments):
        end = 0
        for offset, n_p, n_c, n_r in segments:
            first, rejected = n_p + n_c, offset + n_p + n_c
            mask[r, 0, offset : offset + first, offset : offset + first] = torch.ones(
                first, first, dtype=torch.bool
            ).tril()
            mask[r, 0, rejected : rejected + n_r, offset : offset + n_p] = True
            mask[r, 0, rejected : rejected + n_r, rejected : rejected + n_r] = torch.ones(
                n_r, n_r, dtype=torch.bool
            ).tril()
            end = rejected + n_r
        pads = torch.arange(end, width)
        mask[r, 0, pads, pads] = True
    return mask


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
