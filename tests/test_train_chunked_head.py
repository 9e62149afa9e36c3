"""The chunked LM head: completion log-probs, SFT and DPO losses and their gradients (hidden
states, head weight, every parameter) equal the full-logits computation to float tolerance,
with padding, masks and prefix sharing, for any chunk size; and no (tokens x vocabulary) tensor
is ever built."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_train_prefix_sharing import random_pairs
from torch.utils._python_dispatch import TorchDispatchMode
from train_helpers import tiny_model_and_tokenizer, toy_world

import stylized_dpo.train.logps as common
from stylized_dpo.train.batching import collate_chats, collate_packed_pairs, collate_pairs
from stylized_dpo.train.dpo import preference_loss
from stylized_dpo.train.logps import completion_logps, pair_logps, token_logps
from stylized_dpo.train.tokens import tokenize_sft

torch.set_num_threads(1)


def full_token_logps(h, weight, bias, targets, token_grad=None):
    """The full-logits path the chunked head replaces: (N, V) float32 log-softmax, gathered
    (`token_grad`, a speed hint of the chunked head, changes nothing)."""
    logits = F.linear(h.float(), weight.float(), None if bias is None else bias.float())
    return logits.log_softmax(-1).gather(1, targets[:, None]).squeeze(1)


@pytest.fixture()
def head_inputs():
    g = torch.Generator().manual_seed(0)
    n, hidden, vocab = 37, 16, 300
    h = torch.randn(n, hidden, generator=g, dtype=torch.float64).float().requires_grad_()
    weight = (0.3 * torch.randn(vocab, hidden, generator=g)).requires_grad_()
    bias = (0.1 * torch.randn(vocab, generator=g)).requires_grad_()
    targets = torch.randint(0, vocab, (n,), generator=g)
    upstream = torch.randn(n, generator=g)  # distinct per token, as DPO's are per sequence
    return h, weight, bias, targets, upstream


def value_and_grads(fn, h, weight, bias, targets, upstream):
    for t in (h, weight, bias):
        t.grad = None
    out = fn(h, weight, bias, targets)
    (out * upstream).sum().backward()
    return out.detach(), h.grad.clone(), weight.grad.clone(), bias.grad.clone()


@pytest.mark.parametrize("chunk", [1, 5, 37, 1000])
@pytest.mark.parametrize("with_bias", [True, False])
def test_token_logps_equal_the_full_log_softmax(head_inputs, chunk, with_bias):
    h, weight, bias, targets, upstream = head_inputs
    if not with_bias:
        bias = torch.zeros_like(bias).requires_grad_()
    expected = value_and_grads(full_token_logps, h, weight, bias, targets, upstream)
    chunked = value_and_grads(
        lambda *a: token_logps(*a, chunk_tokens=chunk), h, weight, bias, targets, upstream
    )
    for e, c in zip(expected, chunked, strict=True):
        torch.testing.assert_close(c, e, rtol=1e-5, atol=1e-6)


def test_token_logps_without_bias_and_frozen_head(head_inputs):
    h, weight, _, targets, upstream = head_inputs
    frozen = weight.detach()
    out = token_logps(h, frozen, None, targets, chunk_tokens=4)
    (out * upstream).sum().backward()
    ref_h = h.detach().clone().requires_grad_()
    (full_token_logps(ref_h, frozen, None, targets) * upstream).sum().backward()
    torch.testing.assert_close(h.grad, ref_h.grad, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # reference log-probs: forward only
        torch.testing.assert_close(
            token_logps(h, frozen, None, targets, chunk_tokens=3),
            full_token_logps(h, frozen, None, targets),
        )


class HeadMatmuls(TorchDispatchMode):
    """Counts the matmuls whose result has the vocabulary as its last dimension (the logits)."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab, self.count = vocab, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.linear):
            self.count += out.shape[-1] == self.vocab
        return out


@pytest.mark.parametrize("chunk", [1, 5, 37, 1000])
def test_a_known_token_gradient_is_taken_in_the_forward_pass_bit_for_bit(head_inputs, chunk):
    """With the gradient each token will receive known before the forward pass (SFT's), the
    head computes its gradients there, from its own logits: the same bits as recomputing them
    in backward, one logits matmul fewer; an other gradient falls back to recomputing."""
    h, weight, bias, targets, _ = head_inputs
    grad = -(torch.ones(()) / 29)  # -1/n, as SFT's loss gives every completion token
    results, matmuls = [], []
    for hint in (None, grad):
        with HeadMatmuls(weight.size(0)) as count:
            got = value_and_grads(
                lambda *a, hint=hint: token_logps(*a, chunk_tokens=chunk, token_grad=hint),
                h, weight, bias, targets, grad.expand(h.size(0)),
            )  # fmt: skip
        results.append(got)
        matmuls.append(count.count)
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)
    n_chunks = -(-h.size(0) // chunk)
    recomputed = 0 if n_chunks == 1 else n_chunks  # one chunk keeps its softmax instead
    assert matmuls == [n_chunks + recomputed, n_chunks]
    other = value_and_grads(  # not the gradient announced: recomputed, still right
        lambda *a: token_logps(*a, chunk_tokens=chunk, token_grad=grad),
        h, weight, bias, targets, 2 * grad.expand(h.size(0)),
    )  # fmt: skip
    plain = value_and_grads(
        lambda *a: token_logps(*a, chunk_tokens=chunk), h, weight, bias, targets,
        2 * grad.expand(h.size(0)),
    )  # fmt: skip
    for a, b in zip(other, plain, strict=True):
        assert torch.equal(a, b)


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any torch operation returns (with `last_dim`, only tensors
    whose last dimension has that size: the vocabulary's)."""

    def __init__(self, last_dim: int | None = None):
        super().__init__()
        self.numel, self.last_dim = 0, last_dim

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else [out]:
            if isinstance(t, torch.Tensor) and self.last_dim in (None, t.shape[-1:].numel()):
                self.numel = max(self.numel, t.numel())
        return out


def test_no_tokens_by_vocabulary_tensor_is_built():
    n, hidden, vocab, chunk = 64, 8, 512, 4
    h = torch.randn(n, hidden, requires_grad=True)
    weight = torch.randn(vocab, hidden, requires_grad=True)
    targets = torch.randint(0, vocab, (n,))
    with LargestTensor() as chunked:
        token_logps(h, weight, None, targets, chunk_tokens=chunk).sum().backward()
    assert chunked.numel <= max(chunk * vocab, vocab * hidden)  # a chunk, or the head's gradient
    with LargestTensor() as full:  # the check itself sees the full path's logits
        full_token_logps(h, weight, None, targets).sum().backward()
    assert full.numel == n * vocab


def test_completion_logps_build_no_tokens_by_vocabulary_tensor(small_chunks):
    model, tokenizer = small_chunks
    chats = tokenize_sft(tokenizer, toy_world()["sft"])
    batch = collate_chats(chats, tokenizer.pad_token_id)
    vocab, hidden = model.config.vocab_size, model.config.hidden_size
    n = int(batch["completion_mask"][:, 1:].sum())
    bound = max(7 * vocab, hidden * vocab)  # a chunk of logits, or the head's weight (a view)
    assert n * vocab > bound
    with LargestTensor(last_dim=vocab) as seen:
        completion_logps(model, **batch).sum().backward()
    assert seen.numel <= bound


@pytest.fixture()
def small_chunks(monkeypatch):
    """Chunks of a few tokens, so that a test batch spans many of them."""
    model, tokenizer = tiny_model_and_tokenizer(seed=0)
    monkeypatch.setattr(common, "LOGIT_CHUNK_ELEMENTS", 7 * model.config.vocab_size)
    return model, tokenizer


def full_head(monkeypatch):
    monkeypatch.setattr(common, "token_logps", full_token_logps)


def grads(model):
    return [p.grad.clone() for p in model.parameters()]


def test_sft_loss_and_gradients_equal_transformers_lm_loss(small_chunks, monkeypatch):
    model, tokenizer = small_chunks
    model.train()
    chats = tokenize_sft(tokenizer, toy_world()["sft"])[:6]
    batch = collate_chats(chats, tokenizer.pad_token_id)  # right-padded, prompts masked
    assert len({len(c.input_ids) for c in chats}) > 1
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    model.zero_grad(set_to_none=True)
    hf_loss = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels
    ).loss
    hf_loss.backward()
    hf_grads = grads(model)
    model.zero_grad(set_to_none=True)
    ours = -completion_logps(model, **batch).sum() / batch["completion_mask"][:, 1:].sum()
    ours.backward()
    torch.testing.assert_close(ours.detach(), hf_loss.detach(), rtol=1e-6, atol=1e-6)
    for theirs, mine in zip(hf_grads, grads(model), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-7)
    assert model.config.tie_word_embeddings  # the head's gradient reached the embeddings too


@pytest.mark.parametrize("prefix_sharing", [True, False])
def test_dpo_loss_and_gradients_equal_the_full_logits_path(
    small_chunks, monkeypatch, prefix_sharing
):
    model, tokenizer = small_chunks
    model.train()
    pairs = random_pairs(model.config.vocab_size)
    collate = collate_packed_pairs if prefix_sharing else collate_pairs
    batch = collate(pairs, tokenizer.pad_token_id)
    ref = torch.randn(2 * len(pairs)) - 20.0

    def loss_and_grads():
        model.zero_grad(set_to_none=True)
        chosen, rejected = pair_logps(model, **batch).chunk(2)
        losses, *_ = preference_loss(chosen, rejected, *ref.chunk(2), beta=0.3)
        losses.mean().backward()
        return losses.detach(), torch.cat([chosen, rejected]).detach(), grads(model)

    chunked = loss_and_grads()
    full_head(monkeypatch)
    full = loss_and_grads()
    torch.testing.assert_close(chunked[0], full[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked[1], full[1], rtol=1e-6, atol=1e-5)
    for f, c in zip(full[2], chunked[2], strict=True):
        torch.testing.assert_close(c, f, rtol=1e-4, atol=1e-7)


def test_liger_is_used_on_cuda_only_and_missing_liger_falls_back(head_inputs, monkeypatch):
    h, weight, bias, targets, _ = head_inputs
    monkeypatch.setitem(  # an installed-but-broken or absent liger_kernel: import fails
        __import__("sys").modules, "liger_kernel.transformers.functional", None
    )
    assert common._liger_cross_entropy() is None
    calls = []
    monkeypatch.setattr(common, "_liger_cross_entropy", lambda: calls.append(1))
    token_logps(h, weight, bias, targets)  # CPU tensors: the chunked path, Liger not asked
    assert not calls


def test_bf16_head_accumulates_in_float32(head_inputs, monkeypatch):
    h, weight, bias, targets, upstream = head_inputs
    expected = value_and_grads(full_token_logps, h, weight, bias, targets, upstream)
    monkeypatch.setattr(common, "LM_HEAD_DTYPE", torch.bfloat16)
    bf16 = value_and_grads(
        lambda *a: token_logps(*a, chunk_tokens=8), h, weight, bias, targets, upstream
    )
    assert all(t.dtype == torch.float32 for t in bf16)
    for e, c in zip(expected, bf16, strict=True):  # bf16 rounding of the logits, no worse
        torch.testing.assert_close(c, e, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("chunk", [4, 100])  # several chunks; one chunk (softmax kept)
def test_a_retained_graph_gives_the_same_gradients_twice(head_inputs, chunk):
    h, weight, bias, targets, upstream = head_inputs
    out = token_logps(h, weight, bias, targets, chunk_tokens=chunk)
    (out * upstream).sum().backward(retain_graph=True)
    first = h.grad.clone()
    h.grad = None
    (out * upstream).sum().backward()
    torch.testing.assert_close(h.grad, first)
