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
    mask = batch["attention_mask"][0, 0].int().tolist()
    assert mask[3] == [1, 1, 0, 1, 0, 0, 0, 0, 0]  # pair a's rejected: its prompt, itself
    assert mask[2] == [1, 1, 1, 0, 0, 0, 0, 0, 0]  # pair a's chosen: prompt + chosen
    assert mask[8] == [0, 0, 0, 0, 0, 1, 0, 0, 1]  # pair b's rejected: never pair a
    # token -> the position predicting it; slots: chosen of a, b, then their rejected answers
    assert batch["logp_targets"].tolist() == [3, 4, 5, 7, 8, 9]
    assert batch["logp_index"].tolist() == [1, 1, 3, 5, 6, 5]
    assert batch["logp_segment"].tolist() == [0, 2, 2, 1, 1, 3]
    padded = collate_pair_rows(pairs, 0, 5)  # a row each, the shorter padded
    assert padded["input_ids"].tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 0]]
    assert padded["attention_mask"][1, 0, 4].int().tolist() == [0, 0, 0, 0, 1]


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
