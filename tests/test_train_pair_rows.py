"""Several preference pairs per row (with prefix sharing): the log-probs, DPO losses and
gradients equal those of the unpacked paths, for rows that hold one pair, some, or all."""

from __future__ import annotations

import pytest
import torch
from test_train_prefix_sharing import (
    LENGTHS,
    assert_same_grads,
    logps_and_grads,
    model_and_pairs,  # noqa: F401 (a fixture)
)
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from stylized_dpo.train.attention import pair_rows_attention, pair_rows_mask
from stylized_dpo.train.batching import collate_packed_pairs, collate_pair_rows, collate_pairs
from stylized_dpo.train.dpo import DPOConfig, dpo_forward
from stylized_dpo.train.tokens import TokenizedPair

torch.set_num_threads(1)


@pytest.mark.parametrize("row_tokens", [1, 40, 64, 10_000], ids=["alone", "40", "64", "one-row"])
def test_pair_rows_give_the_unpacked_log_probs_and_gradients(model_and_pairs, row_tokens):  # noqa: F811
    model, pairs, pad_id = model_and_pairs
    rows = collate_pair_rows(pairs, pad_id, row_tokens)
    n_rows = rows["input_ids"].size(0)
    if row_tokens == 1:
        assert n_rows == len(pairs)
    elif row_tokens == 10_000:
        assert n_rows == 1
    else:
        assert 1 < n_rows < len(pairs)  # some rows really hold several pairs
    concat, concat_grads = logps_and_grads(model, collate_pairs(pairs, pad_id))
    packed, packed_grads = logps_and_grads(model, rows)
    torch.testing.assert_close(packed, concat, rtol=0, atol=1e-5)
    assert_same_grads(concat_grads, packed_grads)
    shared, _ = logps_and_grads(model, collate_packed_pairs(pairs, pad_id))
    torch.testing.assert_close(packed, shared, rtol=0, atol=1e-5)


def test_pair_rows_layout():
    pairs = [TokenizedPair("a", [1, 2], [3], [4, 5]), TokenizedPair("b", [6], [7, 8], [9])]
    batch = collate_pair_rows(pairs, 0, 100)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5, 6, 7, 8, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 2, 3, 0, 1, 2, 1]]
    assert batch["pair_segments"] == (((0, 2, 1, 2), (5, 1, 2, 1)),)
    mask = pair_rows_mask(batch["pair_segments"], 9)[0, 0].int().tolist()
    assert mask[3] == [1, 1, 0, 1, 0, 0, 0, 0, 0]  # pair a's rejected: its prompt, itself
    assert mask[2] == [1, 1, 1, 0, 0, 0, 0, 0, 0]  # pair a's chosen: prompt + chosen
    assert mask[8] == [0, 0, 0, 0, 0, 1, 0, 0, 1]  # pair b's rejected: never pair a
    # token -> the position predicting it; slots: chosen of a, b, then their rejected answers
    assert batch["logp_targets"].tolist() == [3, 4, 5, 7, 8, 9]
    assert batch["logp_index"].tolist() == [1, 1, 3, 5, 6, 5]
    assert batch["logp_segment"].tolist() == [0, 2, 2, 1, 1, 3]
    padded = collate_pair_rows(pairs, 0, 5)  # a row each, the shorter padded
    assert padded["input_ids"].tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 0]]
    assert padded["pair_segments"] == (((0, 2, 1, 2),), ((0, 1, 2, 1),))
    assert pair_rows_mask(padded["pair_segments"], 5)[1, 0, 4].int().tolist() == [0, 0, 0, 0, 1]


def test_pair_rows_attention_is_sdpa_under_the_block_diagonal_mask():
    """Two SDPA calls per pair give what one masked call over the whole row gives (the padding
    aside: zeros, where the masked call lets a padding token see itself), values and gradients."""
    torch.manual_seed(0)
    segments = (((0, 3, 4, 2), (9, 1, 1, 5)), ((0, 6, 2, 3),))  # row 2 padded by 5
    width, heads, kv_heads, dim = 16, 4, 2, 8
    module = torch.nn.Module()
    module.is_causal, module.num_key_value_groups = True, heads // kv_heads
    q = torch.randn(2, heads, width, dim, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, kv_heads, width, dim, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, kv_heads, width, dim, dtype=torch.float64, requires_grad=True)
    real = torch.ones(2, width, 1, 1, dtype=torch.float64)
    real[1, 11:] = 0  # row 2's padding
    blocks = pair_rows_attention(module, q, k, v, segments)
    masked, _ = sdpa_attention_forward(module, q, k, v, pair_rows_mask(segments, width))
    assert blocks.shape == masked.shape == (2, width, heads, dim)
    assert not blocks[1, 11:].any()
    torch.testing.assert_close(blocks, masked * real, rtol=0, atol=1e-12)
    grad = torch.randn_like(blocks) * real
    by_blocks = torch.autograd.grad(blocks, (q, k, v), grad)
    by_mask = torch.autograd.grad(masked, (q, k, v), grad)
    for a, b in zip(by_blocks, by_mask, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_dpo_forward_with_pair_rows(model_and_pairs):  # noqa: F811
    model, pairs, pad_id = model_and_pairs
    ref = (torch.randn(len(pairs)) - 30, torch.randn(len(pairs)) - 30)
    outs = []
    for rows in (None, 48):
        cfg = DPOConfig(beta=0.2, pair_rows_tokens=rows)
        model.zero_grad(set_to_none=True)
        *out, n_tokens = dpo_forward(model, pairs, ref, None, cfg, pad_id, "cpu")
        out[0].mean().backward()
        outs.append(
            ([o.detach() for o in out], n_tokens, [p.grad.clone() for p in model.parameters()])
        )
    (a, na, ga), (b, nb, gb) = outs
    assert na == nb == sum(2 * p + c + r for p, c, r in LENGTHS)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-5)
    assert_same_grads(ga, gb)
    with pytest.raises(ValueError, match="prefix_sharing"):
        DPOConfig(prefix_sharing=False, pair_rows_tokens=64)
