"""DPO prefix sharing: pairs packed as [prompt, chosen, rejected] score exactly as the
concatenated chosen and rejected sequences do (log-probs, losses and gradients), whatever the
prompt and answer lengths and the padding of a batch."""

from __future__ import annotations

import copy
import json
import random

import pytest
import torch
from train_helpers import save_tiny_model, tiny_model_and_tokenizer, write_toy_files

from stylized_dpo.train.attention import PACKED_PAIRS_ATTENTION, rejected_block_mask
from stylized_dpo.train.batching import collate_packed_pairs, collate_pairs, collate_preferences
from stylized_dpo.train.dpo import DPOConfig, dpo_forward, train_dpo
from stylized_dpo.train.logps import completion_logps, pair_logps
from stylized_dpo.train.runtime import prepare_model
from stylized_dpo.train.tokens import TokenizedPair

torch.set_num_threads(1)

# (prompt, chosen, rejected) lengths: a long and a short prompt, one-token answers, a rejected
# answer longer than its chosen one and the reverse, so both blocks of the batch are padded
LENGTHS = [(12, 5, 9), (3, 17, 1), (30, 1, 20), (7, 8, 8), (1, 2, 3)]


def random_pairs(vocab: int, lengths=LENGTHS, seed: int = 0) -> list[TokenizedPair]:
    rng = random.Random(seed)

    def ids(n: int) -> list[int]:
        return [rng.randrange(1, vocab) for _ in range(n)]

    return [TokenizedPair(f"p{i}", ids(p), ids(c), ids(r)) for i, (p, c, r) in enumerate(lengths)]


@pytest.fixture()
def model_and_pairs():
    model, tokenizer = tiny_model_and_tokenizer(seed=0)
    model.train()
    return model, random_pairs(model.config.vocab_size), tokenizer.pad_token_id


def logps_and_grads(model, batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    logps = pair_logps(model, **batch)
    (logps * torch.linspace(0.5, 1.5, logps.numel())).sum().backward()  # distinct weights
    return logps.detach(), [p.grad.clone() for p in model.parameters()]


def assert_same_grads(expected: list[torch.Tensor], actual: list[torch.Tensor]) -> None:
    for e, a in zip(expected, actual, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "lengths",
    [LENGTHS, [(4, 3, 1), (2, 1, 1)], [(6, 2, 5)]],
    ids=["mixed", "one-token-rejected", "one-pair"],
)
def test_packed_pairs_give_the_concatenated_log_probs_and_gradients(model_and_pairs, lengths):
    model, _, pad_id = model_and_pairs
    pairs = random_pairs(model.config.vocab_size, lengths, seed=len(lengths))
    concat, concat_grads = logps_and_grads(model, collate_pairs(pairs, pad_id))
    packed, packed_grads = logps_and_grads(model, collate_packed_pairs(pairs, pad_id))
    assert model.config._attn_implementation == PACKED_PAIRS_ATTENTION
    torch.testing.assert_close(packed, concat, rtol=0, atol=1e-5)
    assert_same_grads(concat_grads, packed_grads)
    # and each pair alone (no padding at all) agrees with the padded batch
    for i, pair in enumerate(pairs):
        alone = pair_logps(model, **collate_packed_pairs([pair], pad_id)).detach()
        n = len(pairs)
        torch.testing.assert_close(alone, packed[[i, n + i]], rtol=0, atol=1e-5)
    # the model's other calls are still plain SDPA
    plain = completion_logps(model, **collate_pairs(pairs, pad_id)).detach()
    torch.testing.assert_close(plain, concat, rtol=0, atol=0)


def test_packed_layout():
    pairs = [TokenizedPair("a", [1, 2, 3], [4, 5], [6]), TokenizedPair("b", [7], [8], [9, 10, 11])]
    batch = collate_packed_pairs(pairs, pad_id=0)
    # prompt + chosen padded to the longest (5), then the rejected answers padded to theirs (3)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5, 6, 0, 0], [7, 8, 0, 0, 0, 9, 10, 11]]
    # the rejected answer's positions follow its own prompt, as in its own sequence
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 3, 4, 5], [0, 1, 2, 3, 4, 1, 2, 3]]
    assert (batch["rejected_start"], batch["prompt_width"]) == (5, 3)
    assert batch["prompt_lengths"].tolist() == [3, 1]
    # each answer token is predicted by the position before it in its own sequence; each
    # answer's first token by its prompt's last position
    assert batch["logp_targets"].tolist() == [4, 5, 6, 8, 9, 10, 11]
    assert batch["logp_index"].tolist() == [2, 3, 2, 8, 8, 13, 14]
    assert batch["logp_segment"].tolist() == [0, 0, 2, 1, 3, 3, 3]
    # the tokens after the predicting positions: the targets, except for each rejected answer's
    # first token (6, 9), predicted where the chosen answer follows the prompt
    flat = batch["input_ids"].flatten()
    assert flat[batch["logp_index"] + 1].tolist() == [4, 5, 4, 8, 8, 10, 11]
    with pytest.raises(ValueError, match="empty"):
        collate_packed_pairs([TokenizedPair("c", [1], [], [2])], pad_id=0)


def test_rejected_block_mask():
    mask = rejected_block_mask(torch.tensor([3, 1]), prompt_width=3, rejected_width=2)
    assert mask.shape == (2, 1, 2, 5)
    assert mask[0, 0].tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    assert mask[1, 0].tolist() == [[1, 0, 0, 1, 0], [1, 0, 0, 1, 1]]
    assert mask.any(-1).all()  # no fully masked row (NaN in SDPA)


@pytest.mark.parametrize("reference", ["model", "precomputed", "free"])
def test_dpo_forward_is_the_same_with_and_without_prefix_sharing(model_and_pairs, reference):
    model, pairs, pad_id = model_and_pairs
    ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    with torch.no_grad():  # a reference that differs from the policy
        for p in ref_model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    results = []
    for sharing in (False, True):
        for loss in ("sigmoid", "ipo"):
            cfg = DPOConfig(beta=0.3, loss=loss, prefix_sharing=sharing, device="cpu")
            refs = None
            if reference == "precomputed":
                with torch.no_grad():
                    refs = pair_logps(ref_model, **collate_pairs(pairs, pad_id)).chunk(2)
            elif reference == "free":
                cfg = DPOConfig(beta=0.3, loss=loss, reference_free=True, prefix_sharing=sharing)
            model.zero_grad(set_to_none=True)
            *out, n_tokens = dpo_forward(
                model, pairs, refs, ref_model if reference == "model" else None, cfg, pad_id, "cpu"
            )
            out[0].mean().backward()
            results.append(
                ([t.detach() for t in out], n_tokens, [p.grad.clone() for p in model.parameters()])
            )
    for (a, tokens_a, grads_a), (b, tokens_b, grads_b) in zip(
        results[:2], results[2:], strict=True
    ):
        assert tokens_a == tokens_b == sum(2 * p + c + r for p, c, r in LENGTHS)
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-5)
        assert_same_grads(grads_a, grads_b)


@pytest.mark.parametrize("row_tokens", [None, 64], ids=["pair-a-row", "pair-rows"])
def test_gradient_checkpointing_with_prefix_sharing(model_and_pairs, row_tokens):
    """The packed layouts' attention arguments reach the checkpointed layers' recomputation."""
    model, pairs, pad_id = model_and_pairs
    batch = collate_preferences(pairs, pad_id, prefix_sharing=True, row_tokens=row_tokens)
    plain = logps_and_grads(model, batch)
    prepare_model(model, gradient_checkpointing=True, compile=False)
    checkpointed = logps_and_grads(model, batch)
    torch.testing.assert_close(checkpointed[0], plain[0], rtol=0, atol=0)
    assert_same_grads(plain[1], checkpointed[1])


def test_prefix_sharing_needs_sdpa(model_and_pairs):
    model, pairs, pad_id = model_and_pairs
    model.config._attn_implementation = "eager"
    with pytest.raises(ValueError, match="needs the sdpa attention"):
        pair_logps(model, **collate_packed_pairs(pairs, pad_id))


def test_training_with_and_without_prefix_sharing_logs_the_same_run(tmp_path):
    """A few DPO steps (on-the-fly reference) log the same losses and gradient norms, and the
    saved model's config names no custom attention."""
    paths = write_toy_files(tmp_path)
    model_dir = save_tiny_model(tmp_path / "sft")
    runs = []
    for sharing in (False, True):
        out = tmp_path / f"sharing{sharing}"
        cfg = DPOConfig(
            reference="model",
            lr=1e-3,
            batch_size=4,
            max_steps=3,
            eval_every=2,
            warmup_ratio=0.0,
            device="cpu",
            prefix_sharing=sharing,
        )
        train_dpo(
            model_dir,
            paths["prefs_train"],
            paths["prefs_test"],
            out / "model",
            out / "metrics.jsonl",
            out / "ckpt",
            cfg,
        )
        runs.append([json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()])
        assert PACKED_PAIRS_ATTENTION not in (out / "model" / "config.json").read_text()
    assert [(r["step"], r["split"]) for r in runs[0]] == [(r["step"], r["split"]) for r in runs[1]]
    for a, b in zip(*runs, strict=True):
        for key in ("loss", "reward_margin", "logps_chosen", "logps_rejected", "grad_norm"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (a, b)
