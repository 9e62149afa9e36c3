"""The chunked optimizer steps take torch's single-tensor AdamW and RMSprop steps bit for bit, and
keep their state dicts, with temporaries of one chunk."""

from __future__ import annotations

import pytest
import torch

from stylized_dpo.train.optim import ChunkedAdamW, ChunkedRMSprop

torch.set_num_threads(1)


def parameters() -> list[torch.nn.Parameter]:
    """A matrix whose size is no multiple of the chunk, a vector, and a parameter without a
    gradient (skipped by both)."""
    torch.manual_seed(0)
    return [torch.nn.Parameter(torch.randn(shape)) for shape in ((37, 13), (29,), (3, 3))]


def run(make, steps: int = 4) -> tuple[list[torch.Tensor], dict]:
    params = parameters()
    optimizer = make(params)
    torch.manual_seed(1)
    for _ in range(steps):
        for p in params[:2]:
            p.grad = torch.randn_like(p)
        optimizer.step()
    return [p.detach() for p in params], optimizer.state_dict()


CASES = {
    "adamw": (
        lambda ps: torch.optim.AdamW(
            ps, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1, foreach=False
        ),
        lambda ps: ChunkedAdamW(ps, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1),
    ),
    "rmsprop": (
        lambda ps: torch.optim.RMSprop(ps, lr=1e-2, weight_decay=0.01, foreach=False),
        lambda ps: ChunkedRMSprop(ps, lr=1e-2, weight_decay=0.01),
    ),
}


@pytest.mark.parametrize("chunk", [1, 64, 1 << 22], ids=["1", "64", "whole"])
@pytest.mark.parametrize("name", CASES)
def test_chunked_steps_are_torchs_bit_for_bit(name, chunk, monkeypatch):
    reference, chunked = CASES[name]
    monkeypatch.setattr(ChunkedAdamW, "chunk_elements", chunk)
    monkeypatch.setattr(ChunkedRMSprop, "chunk_elements", chunk)
    want, want_state = run(reference)
    got, got_state = run(chunked)
    assert not torch.equal(got[0], parameters()[0])  # the parameters moved
    for a, b in zip(want, got, strict=True):
        assert torch.equal(a, b)
    assert want_state["state"].keys() == got_state["state"].keys() == {0, 1}
    for i, state in want_state["state"].items():
        assert state.keys() == got_state["state"][i].keys()
        for key, value in state.items():
            assert value.dtype == got_state["state"][i][key].dtype
            assert torch.equal(value, got_state["state"][i][key])


@pytest.mark.parametrize("name", CASES)
def test_a_state_dict_moves_between_torchs_step_and_the_chunked_one(name):
    """A checkpoint written with either optimizer resumes with the other, to the same bits."""
    reference, chunked = CASES[name]
    both = []
    for first, second in ((reference, chunked), (chunked, reference)):
        params = parameters()
        optimizer = first(params)
        for _ in range(2):
            for p in params[:2]:
                p.grad = torch.ones_like(p)
            optimizer.step()
        resumed = second(params)
        resumed.load_state_dict(optimizer.state_dict())
        for p in params[:2]:
            p.grad = torch.full_like(p, -0.5)
        resumed.step()
        both.append([p.detach().clone() for p in params])
    for a, b in zip(*both, strict=True):
        assert torch.equal(a, b)


def test_unsupported_options_are_refused():
    with pytest.raises(ValueError, match="amsgrad"):
        ChunkedAdamW(parameters(), amsgrad=True).step()
    with pytest.raises(ValueError, match="momentum"):
        ChunkedRMSprop(parameters(), momentum=0.9).step()
