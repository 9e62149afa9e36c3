"""`steady_allocator`: freed tensors go back to the OS even after glibc has seen a large block
freed (which, by default, moves later tensors onto a heap that fragments and keeps them)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import sys, torch
from stylized_dpo.train.runtime import steady_allocator
if sys.argv[1] == "steady":
    steady_allocator()
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
big = torch.ones(16 << 20, dtype=torch.uint8); del big  # raises glibc's threshold to 16 MB
start = rss_mb()
blocks, pins = [], []
for _ in range(40):  # 8 MB tensors, each followed by a small one that stays
    blocks.append(torch.ones(2 << 20))
    pins.append(torch.ones(64))
del blocks
print(rss_mb() - start)
"""


def grown_mb(mode: str) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, check=True
    )
    return float(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_tensors_are_returned_to_the_os():
    assert grown_mb("steady") < 30  # 320 MB allocated and freed, almost nothing kept


RELEASE_SCRIPT = """
import sys, torch
from stylized_dpo.train.runtime import release_freed_heap, steady_allocator
steady_allocator()
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
blocks, pins = [], []
for _ in range(int(sys.argv[1])):  # 2 MB tensors (heap: below the 4 MB threshold), each
    blocks.append(torch.ones(1 << 19))  # followed by a 64 KB one that stays (past glibc's
    pins.append(torch.ones(1 << 14))  # small-block caches, so it is cut from the heap's top)
del blocks
before = rss_mb()
print(release_freed_heap(), before - rss_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
@pytest.mark.parametrize("blocks, trims", [(200, True), (50, False)])
def test_freed_heap_is_released_past_its_slack(blocks, trims):
    """400 MB freed on a fragmented heap is handed back; 100 MB (below 256 MB) is kept."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    out = subprocess.run(
        [sys.executable, "-c", RELEASE_SCRIPT, str(blocks)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.split()
    assert out[-2] == str(trims)
    released = float(out[-1])
    assert released > 350 if trims else released < 20


def test_the_backward_pass_releases_freed_heap_at_each_layer(monkeypatch):
    """`prepare_model` has each decoder layer's backward call `release_freed_heap` (on CPU, with
    or without checkpointing); a forward without gradients registers nothing."""
    import torch
    from train_helpers import tiny_model_and_tokenizer

    from stylized_dpo.train import runtime

    calls = []
    monkeypatch.setattr(runtime, "release_freed_heap", lambda: calls.append(1) or False)
    ids = torch.tensor([[5, 6, 7, 8]])
    for checkpointing in (False, True):
        model, _ = tiny_model_and_tokenizer()
        runtime.prepare_model(model, gradient_checkpointing=checkpointing, compile=False)
        model.train()
        with torch.no_grad():
            model(input_ids=ids)
        calls.clear()
        model(input_ids=ids).logits.sum().backward()
        assert len(calls) == len(model.get_decoder().layers), checkpointing
