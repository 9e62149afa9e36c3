"""Lean layers: the same log-probs and gradients as transformers' MLP and RMSNorm bit for bit,
with fewer activations kept for backward; and the training process's flush-to-zero."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
import torch
from train_helpers import tiny_model_and_tokenizer, toy_world

from stylized_dpo.train.batching import collate_chats
from stylized_dpo.train.lean_layers import (
    RMS_NORMS,
    is_swiglu,
    use_lean_layers,
    use_row_sums_embedding,
)
from stylized_dpo.train.logps import completion_logps
from stylized_dpo.train.runtime import prepare_model
from stylized_dpo.train.tokens import tokenize_sft

torch.set_num_threads(1)


def logps_and_grads(model, batch, autocast: bool = False):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logps = completion_logps(model, **batch)
    logps.sum().backward()
    return logps.detach(), {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("checkpointing, autocast", [(False, False), (True, False), (False, True)])
def test_same_log_probs_and_gradients_bit_for_bit(checkpointing, autocast):
    stock, tokenizer = tiny_model_and_tokenizer()
    prepare_model(stock, gradient_checkpointing=checkpointing, compile=False)
    lean = copy.deepcopy(stock)
    if not checkpointing:  # prepare_model switched to the lean layers: transformers' back
        for module in switched(stock):
            del module.forward
    else:  # checkpointed models keep transformers' layers: the lean ones under checkpoints
        use_lean_layers(lean)
    assert len(switched(lean)) == 3 * len(lean_layers(lean)) + 1  # MLP, 2 norms; final norm
    assert not switched(stock)
    batch = collate_chats(tokenize_sft(tokenizer, toy_world()["sft"][:6]), 0)
    stock.train(), lean.train()
    want_logps, want_grads = logps_and_grads(stock, batch, autocast)
    got_logps, got_grads = logps_and_grads(lean, batch, autocast)
    assert torch.equal(got_logps, want_logps)
    assert want_grads.keys() == got_grads.keys()
    for name, grad in want_grads.items():
        assert torch.equal(got_grads[name], grad), name


def test_prepare_model_uses_lean_layers_without_checkpointing_only():
    plain, _ = tiny_model_and_tokenizer()
    checkpointed = copy.deepcopy(plain)
    prepare_model(plain, gradient_checkpointing=False, compile=False)
    prepare_model(checkpointed, gradient_checkpointing=True, compile=False)
    assert len(switched(plain)) == 3 * len(lean_layers(plain)) + 1
    assert not switched(checkpointed)


def lean_layers(model):
    return model.get_decoder().layers


def switched(model):
    """The MLPs and norms whose forward was replaced (the embedding's: `row_sums_embedding`)."""
    return [
        m for m in model.modules() if "forward" in vars(m) and not isinstance(m, torch.nn.Embedding)
    ]


@pytest.mark.parametrize("checkpointing", [False, True])
def test_row_sums_embedding_gives_the_tied_gradient_bit_for_bit(checkpointing):
    """The input embedding's gradient as per-token sums, added into the tied head's: the same
    gradients as the stock dense embedding backward, with the padding id (`padding_idx`) and
    repeated tokens."""
    stock, tokenizer = tiny_model_and_tokenizer()
    assert stock.get_input_embeddings().padding_idx == tokenizer.pad_token_id is not None
    prepare_model(stock, gradient_checkpointing=checkpointing, compile=False)
    embedding = stock.get_input_embeddings()
    assert "forward" in vars(embedding)
    rows = copy.deepcopy(stock)
    del embedding.forward  # the stock embedding back
    batch = collate_chats(tokenize_sft(tokenizer, toy_world()["sft"][:6]), tokenizer.pad_token_id)
    # the padding id inside a prompt, where its row's upstream gradient is not zero: the stock
    # backward leaves the padding row out all the same
    batch["input_ids"][0, 2] = tokenizer.pad_token_id
    assert batch["input_ids"].unique().numel() < batch["input_ids"].numel()  # repeated tokens
    stock.train(), rows.train()
    want_logps, want_grads = logps_and_grads(stock, batch)
    got_logps, got_grads = logps_and_grads(rows, batch)
    assert torch.equal(got_logps, want_logps)
    for name, grad in want_grads.items():
        assert got_grads[name].layout == torch.strided, name
        assert torch.equal(got_grads[name], grad), name


def test_row_sums_embedding_only_for_a_tied_head():
    model, _ = tiny_model_and_tokenizer()
    model.get_output_embeddings().weight = torch.nn.Parameter(
        model.get_input_embeddings().weight.clone()
    )
    assert not use_row_sums_embedding(model)  # its sparse gradient would reach the optimizer
    assert "forward" not in vars(model.get_input_embeddings())


def saved_activation_bytes(module, *inputs) -> int:
    """Bytes autograd keeps for backward from one forward of `module`, parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    kept: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            kept[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(*inputs)
    return sum(kept.values())


def test_keeps_x_gate_and_up_only():
    model, _ = tiny_model_and_tokenizer()
    mlp = lean_layers(model)[0].mlp
    hidden, inner = mlp.hidden_size, mlp.intermediate_size
    tokens = 2 * 9
    x = torch.randn(2, 9, hidden, requires_grad=True)
    # transformers' MLP keeps x, gate(x), up(x), silu(gate(x)) and their product
    assert saved_activation_bytes(mlp, x) == 4 * tokens * (hidden + 4 * inner)
    use_lean_layers(model)
    assert saved_activation_bytes(mlp, x) == 4 * tokens * (hidden + 2 * inner)


def test_rms_norm_keeps_its_input_and_inverse_rms_only():
    model, _ = tiny_model_and_tokenizer()
    norm = lean_layers(model)[0].input_layernorm
    assert type(norm) in RMS_NORMS
    tokens, hidden = 2 * 9, norm.weight.numel()
    x = torch.randn(2, 9, hidden, requires_grad=True)
    # transformers' RMSNorm keeps x, 1/rms(x) and x/rms(x)
    assert saved_activation_bytes(norm, x) == 4 * tokens * (2 * hidden + 1)
    use_lean_layers(model)
    assert saved_activation_bytes(norm, x) == 4 * tokens * (hidden + 1)


def test_switches_swiglu_mlps_and_rms_norms_only():
    model, _ = tiny_model_and_tokenizer()
    n_layers = len(lean_layers(model))
    assert use_lean_layers(model) == 3 * n_layers + 1
    gelu = copy.deepcopy(lean_layers(model)[0].mlp)
    gelu.act_fn = torch.nn.GELU()
    assert not is_swiglu(gelu)
    with_bias = copy.deepcopy(lean_layers(model)[0].mlp)
    with_bias.up_proj = torch.nn.Linear(4, 4, bias=True)
    assert not is_swiglu(with_bias)
    state = model.state_dict()  # saved files keep transformers' parameter names
    assert set(state) == set(tiny_model_and_tokenizer()[0].state_dict())


FLUSH_SCRIPT = """
import sys, torch
from stylized_dpo.train.runtime import training_process
if sys.argv[1] == "training":
    training_process()
product = (torch.tensor([1e-39]) * 3).item()
print(torch.set_flush_denormal(False), product)
"""


def test_training_process_flushes_denormals_to_zero():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def product(mode: str) -> tuple[bool, float]:
        """(whether this CPU can flush, 3 x 1e-39 in float32), computed before resetting."""
        out = subprocess.run(
            [sys.executable, "-c", FLUSH_SCRIPT, mode],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout.split()
        return out[-2] == "True", float(out[-1])

    supported, plain = product("plain")
    assert plain == pytest.approx(3e-39, rel=1e-3)  # a float32 denormal
    if supported:  # x86 with SSE3: flush-to-zero exists
        assert product("training")[1] == 0.0
