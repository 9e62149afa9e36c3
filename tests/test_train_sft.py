"""SFT core: the completion mask, log-probs against transformers' loss, padding, accumulation."""

from __future__ import annotations

import pytest
import torch
from train_helpers import (
    run_sft,
    save_tiny_model,
    tiny_model_and_tokenizer,
    toy_world,
    write_toy_files,
)

from stylized_dpo.model import IM_END
from stylized_dpo.train.attention import pair_rows_mask
from stylized_dpo.train.batching import collate_chat_rows, collate_chats
from stylized_dpo.train.logps import completion_logps, pair_logps, right_padded
from stylized_dpo.train.sft import SFTConfig
from stylized_dpo.train.tokens import (
    TokenizedChat,
    encode_completions,
    filter_by_length,
    tokenize_sft,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = tiny_model_and_tokenizer()
    model.eval()
    chats = tokenize_sft(tokenizer, toy_world()["sft"])
    return model, tokenizer, chats


def test_mask_covers_exactly_the_answer_and_its_im_end(tiny):
    _, tokenizer, _ = tiny
    for example in toy_world()["sft"][:6]:
        (chat,) = tokenize_sft(tokenizer, [example])
        trained = [t for t, m in zip(chat.input_ids, chat.completion_mask, strict=True) if m]
        prompt = [t for t, m in zip(chat.input_ids, chat.completion_mask, strict=True) if not m]
        assert tokenizer.decode(trained) == example.assistant + IM_END
        assert trained[-1] == tokenizer.convert_tokens_to_ids(IM_END)
        assert tokenizer.decode(prompt) == tokenizer.apply_chat_template(
            example.prompt_messages(), tokenize=False, add_generation_prompt=True
        )
        # the whole sequence is the template's rendering of the full chat, minus the newline
        # after the final <|im_end|> (not trained: generation stops at <|im_end|>)
        full = example.prompt_messages() + [{"role": "assistant", "content": example.assistant}]
        rendered = tokenizer.apply_chat_template(full, tokenize=False)
        assert tokenizer.decode(chat.input_ids) + "\n" == rendered


def test_default_system_prompt_only_when_none_given(tiny):
    _, tokenizer, _ = tiny
    user = [{"role": "user", "content": "Hi"}]
    text = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    own = [{"role": "system", "content": "Be brief."}] + user
    text = tokenizer.apply_chat_template(own, tokenize=False)
    assert "helpful assistant" not in text and text.count("<|im_start|>system") == 1


def test_empty_completion_and_all_masked_examples_fail_clearly(tiny):
    model, tokenizer, chats = tiny
    with pytest.raises(ValueError, match="empty"):
        encode_completions(tokenizer, ["fine", "  "])
    batch = collate_chats(chats[:2], tokenizer.pad_token_id)
    batch["completion_mask"][1] = 0
    with pytest.raises(ValueError, match="no completion token"):
        completion_logps(model, **batch)


def test_length_filters_count_their_drops(tiny):
    _, _, chats = tiny
    longest_prompt = max(len(c.prompt_ids) for c in chats)
    kept, drops = filter_by_length(chats, longest_prompt - 1, 10_000)
    n_long = sum(len(c.prompt_ids) > longest_prompt - 1 for c in chats)
    assert drops == {"prompt_too_long": n_long, "completion_too_long": 0}
    assert len(kept) == len(chats) - n_long
    kept, drops = filter_by_length(chats, 10_000, 12)
    assert drops["completion_too_long"] == sum(len(c.completion_ids) > 12 for c in chats)
    assert all(len(c.completion_ids) <= 12 for c in kept)


def test_loss_equals_transformers_with_prompt_labels_masked(tiny):
    model, tokenizer, chats = tiny
    for chat in chats[:8]:
        input_ids = torch.tensor([chat.input_ids])
        labels = input_ids.masked_fill(torch.tensor([chat.completion_mask]) == 0, -100)
        hf_loss = model(input_ids=input_ids, labels=labels).loss  # mean NLL per label token
        ours = -completion_logps(
            model, input_ids, torch.ones_like(input_ids), torch.tensor([chat.completion_mask])
        )
        assert torch.allclose(ours / len(chat.completion_ids), hf_loss, atol=1e-6, rtol=1e-6)


def test_padded_batch_equals_single_examples(tiny):
    model, tokenizer, chats = tiny
    group = chats[:6]
    assert len({len(c.input_ids) for c in group}) > 1  # padding really happens
    batched = completion_logps(model, **collate_chats(group, tokenizer.pad_token_id))
    single = torch.cat(
        [completion_logps(model, **collate_chats([c], tokenizer.pad_token_id)) for c in group]
    )
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize("row_tokens", [1, 150, 10_000], ids=["alone", "150", "one-row"])
def test_chat_rows_give_the_padded_batch_log_probs_and_gradients(tiny, row_tokens):
    model, tokenizer, chats = tiny
    group = chats[:7]
    rows = collate_chat_rows(group, tokenizer.pad_token_id, row_tokens)
    n_rows = rows["input_ids"].size(0)
    assert n_rows == {1: len(group), 10_000: 1}.get(row_tokens, n_rows)
    if row_tokens == 150:
        assert 1 < n_rows < len(group)  # some rows really hold several chats
    results = []
    for batch in (collate_chats(group, tokenizer.pad_token_id), rows):
        model.zero_grad(set_to_none=True)
        logps = pair_logps(model, **batch)
        logps.sum().backward()
        results.append((logps.detach(), [p.grad.clone() for p in model.parameters()]))
    (padded, padded_grads), (packed, packed_grads) = results
    torch.testing.assert_close(packed, padded, rtol=0, atol=1e-5)
    for a, b in zip(padded_grads, packed_grads, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_chat_rows_layout():
    chats = [TokenizedChat("a", [1, 2], [3, 4]), TokenizedChat("b", [5], [6, 7, 8, 9])]
    batch = collate_chat_rows(chats, 0, 100)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 1, 2, 3, 4]]  # longest first
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 3]]
    assert batch["pair_segments"] == (((0, 5, 0, 0), (5, 4, 0, 0)),)
    mask = pair_rows_mask(batch["pair_segments"], 9)[0, 0].int().tolist()
    assert mask[6] == [0, 0, 0, 0, 0, 1, 1, 0, 0]  # chat a sees itself, causally, never chat b
    # each completion token -> the position predicting it, and its chat's slot
    assert batch["logp_targets"].tolist() == [6, 7, 8, 9, 3, 4]
    assert batch["logp_index"].tolist() == [0, 1, 2, 3, 6, 7]
    assert batch["logp_segment"].tolist() == [1, 1, 1, 1, 0, 0]
    assert batch["n_slots"] == 2
    with pytest.raises(ValueError, match="fewer than 2 tokens"):
        collate_chat_rows([TokenizedChat("c", [], [9])], 0, 100)


def test_left_padding_keeps_its_mask(tiny):
    """A right-padded batch runs without its padding mask (causal attention never reaches the
    padding); any other padding must keep the mask, or the real tokens would attend to pads."""
    model, tokenizer, chats = tiny
    group = chats[:6]
    batch = collate_chats(group, tokenizer.pad_token_id)
    assert right_padded(batch["attention_mask"])
    shift = [int(n) for n in batch["attention_mask"].size(1) - batch["attention_mask"].sum(1)]
    left = {
        k: torch.stack([v[i].roll(shift[i]) for i in range(len(group))]) for k, v in batch.items()
    }
    assert not right_padded(left["attention_mask"])
    single = torch.cat(
        [completion_logps(model, **collate_chats([c], tokenizer.pad_token_id)) for c in group]
    )
    # pad ids at the start under their positions shift the real tokens' positions (RoPE is
    # relative, so the scores stay the same to rounding); what the mask guards is attention
    torch.testing.assert_close(completion_logps(model, **left), single, atol=1e-4, rtol=1e-5)
    assert right_padded(torch.tensor([[1, 1, 0], [1, 1, 1]]))
    assert not right_padded(torch.tensor([[1, 0, 1]]))


def test_grad_accumulation_normalises_per_token_of_the_effective_batch(tmp_path):
    """One step over the same 8 examples as 1x8 or 2x4 micro-batches: same loss and gradient
    norm (micro-batches hold different numbers of completion tokens, so a per-micro-batch mean
    would differ)."""
    paths = write_toy_files(tmp_path)
    lines = paths["sft_train"].read_text().splitlines()[:8]
    paths["sft_train"].write_text("\n".join(lines) + "\n")
    model_dir = save_tiny_model(tmp_path / "model")
    rows = {}
    for batch_size, grad_accum in [(8, 1), (4, 2), (1, 8)]:
        out = tmp_path / f"run{batch_size}"
        cfg = SFTConfig(batch_size=batch_size, grad_accum=grad_accum, max_steps=1, lr=1e-3)
        metrics = run_sft(model_dir, paths, out, cfg)
        rows[grad_accum] = next(r for r in metrics if r["split"] == "train")
    for accum in (2, 8):
        assert rows[accum]["loss"] == pytest.approx(rows[1]["loss"], rel=1e-5)
        assert rows[accum]["grad_norm"] == pytest.approx(rows[1]["grad_norm"], rel=1e-4)


def test_training_with_chat_rows_logs_the_same_run(tmp_path):
    """Three steps with and without packing: the same losses and gradient norms (to float
    rounding); the packed run's micro-batches really share rows."""
    paths = write_toy_files(tmp_path)
    model_dir = save_tiny_model(tmp_path / "model")
    runs = []
    for rows in (None, 150):
        out = tmp_path / f"rows{rows}"
        cfg = SFTConfig(batch_size=6, max_steps=3, lr=1e-3, eval_every=2, pack_rows_tokens=rows)
        runs.append(run_sft(model_dir, paths, out, cfg))
    plain, packed = runs
    assert [r["split"] for r in plain] == [r["split"] for r in packed]
    for a, b in zip(plain, packed, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        if a["split"] == "train":
            assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3)
    _, tokenizer = tiny_model_and_tokenizer()
    chats = tokenize_sft(tokenizer, toy_world()["sft"])[:6]
    assert collate_chat_rows(chats, 0, 150)["input_ids"].size(0) < 6
    with pytest.raises(ValueError, match="pack_rows_tokens"):
        SFTConfig(pack_rows_tokens=0)


@pytest.mark.parametrize("weight", [1.0, 0.3])
def test_sft_token_grad_is_the_gradient_the_loss_gives(tiny, monkeypatch, weight):
    """`sft_token_grad` announces, before the forward pass, exactly the gradient SFT's loss
    sends each completion token's log-prob (so the head keeps the gradients it took early)."""
    import stylized_dpo.train.logps as common
    from stylized_dpo.train.distributed import Dist
    from stylized_dpo.train.sft import sft_token_grad

    model, tokenizer, chats = tiny
    seen = []
    chunked = common.token_logps

    def spying(*args, **kwargs):
        out = chunked(*args, **kwargs)
        out.register_hook(lambda g: seen.append(g))
        return out

    monkeypatch.setattr(common, "token_logps", spying)
    dist = Dist(world_size=3)  # the DDP path's scaling (its backward is a plain one here)
    batch = collate_chats(chats[:5], tokenizer.pad_token_id)
    n = int(batch["completion_mask"][:, 1:].sum())
    for d in (Dist(), dist):
        seen.clear()
        announced = sft_token_grad(d, n, weight)
        d.backward(-completion_logps(model, **batch, token_grad=announced).sum() / n, weight)
        assert torch.equal(seen[0], announced.expand_as(seen[0]))
