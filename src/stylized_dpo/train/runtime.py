"""How a training process runs on its device: bf16 autocast on CUDA, the memory/speed settings
of a model, a glibc allocator setting that keeps resident memory flat, and flush-to-zero."""

from __future__ import annotations

import ctypes
import functools
import os
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from transformers import PreTrainedModel

from stylized_dpo.train.lean_layers import use_lean_layers, use_row_sums_embedding


def autocast(device: str) -> AbstractContextManager[Any]:
    """bf16 autocast on CUDA (master weights stay fp32); plain fp32 on CPU."""
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def prepare_model(
    model: PreTrainedModel, gradient_checkpointing: bool, compile: bool, lean_layers: bool = True
) -> None:
    """Set up a model for training (or the reference model beside it).

    `gradient_checkpointing` recomputes each decoder layer's activations in the backward pass
    (non-reentrant checkpoints): less memory for about one more forward pass, same maths.
    Without it, the SwiGLU MLPs and RMSNorms keep fewer activations for backward
    (`use_lean_layers`: 43% fewer at Qwen2.5-0.5B's shape; the same gradients bit for bit).
    With it a layer's activations only live during its own backward, so keeping fewer of them
    saves little, and recomputing the SwiGLU a third time cost 2-4% (`bench_train.py
    --plain-layers`, 4 layers of Qwen2.5-0.5B's shape): checkpointed models keep
    transformers' layers (as do all with `lean_layers=False`). `compile` runs the decoder
    through `torch.compile` in place (parameter names and saved files are unchanged); kernels
    are fused, so float results may differ in the last bits. A tied input embedding (Qwen2.5's
    small models) gives its gradient as per-token sums on CPU (`use_row_sums_embedding`: no
    dense (V, H) temporary; the same gradient bit for bit), and on CPU the backward pass hands
    freed heap back to the OS as it goes (`release_heap_in_backward`).
    """
    use_row_sums_embedding(model)
    if model.device.type == "cpu":
        release_heap_in_backward(model)
    if gradient_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:  # the older name (deprecated since)
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    elif lean_layers:
        use_lean_layers(model)
    if compile:
        model.get_decoder().compile()


def training_process() -> None:
    """The process-wide settings of a training run: `steady_allocator`, and float32 denormals
    flushed to zero on the CPU.

    DPO's backward produces denormal intermediates (below 1.2e-38), which x86 CPUs compute
    on a slow path: at Qwen2.5-0.5B's shape a 4-pair DPO backward took 404.6 CPU-s with them
    and 172.4 flushed (`bench_train.py --keep-denormals` shows the difference). Flushing sets
    those values to 0, far below what a float32 gradient resolves; GPUs are not affected."""
    steady_allocator()
    torch.set_flush_denormal(True)


MMAP_THRESHOLD = 4 << 20


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library, loaded once (None where there is no glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    if hasattr(libc, "mallinfo2"):
        libc.mallinfo2.restype = _MallInfo2
    return libc


def steady_allocator() -> None:
    """Have glibc map every block of `MMAP_THRESHOLD` bytes (4 MB) or more on its own, and
    unmap it when freed, for the rest of the process.

    By default glibc raises that threshold to the largest block freed so far (up to 32 MB):
    from then on activations below it come from the heap, whose freed space fragments and is
    not returned, so a training process's resident memory and peak creep up step after step
    (`bench_train.py --repeat-batch --glibc-default` shows it). A fixed threshold turns that
    off. 4 MB rather than glibc's initial 128 KB: mapping every small tensor afresh costs the
    miniature a third of its speed in page faults. A threshold the user set
    (`MALLOC_MMAP_THRESHOLD_`) is kept; no-op without glibc."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    libc = _glibc()
    m_mmap_threshold = -3  # malloc.h
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)


class _MallInfo2(ctypes.Structure):
    _fields_ = [  # glibc's struct mallinfo2 (malloc.h), all size_t
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


HEAP_SLACK = 256 << 20


def release_freed_heap() -> bool:
    """Hand the heap's free pages back to the OS (`malloc_trim(0)`) once more than
    `HEAP_SLACK` bytes (256 MB) of it are free; called after every optimizer step. Returns
    whether it trimmed.

    Below the mmap threshold, blocks come from glibc's heap, whose free space fragments and
    stays resident: with the same batch at every step (Qwen2.5-0.5B's shape, 24 layers) the
    resident memory between steps went 6.6 -> 7.4 GB over 10 steps, and each step's peak with
    it. Trimming every step holds it flat but costs the miniature 13-20% of its speed (freed
    pages fault back in at the next step), and the miniature never has 256 MB free. No-op
    without glibc >= 2.33 (mallinfo2)."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2") or libc.mallinfo2().fordblks <= HEAP_SLACK:
        return False
    libc.malloc_trim(0)
    return True


def release_heap_in_backward(model: PreTrainedModel) -> None:
    """Call `release_freed_heap` as the backward pass reaches each decoder layer.

    Activations below the mmap threshold (a small batch's [tokens x hidden] tensors at
    Qwen2.5-0.5B's shape) live on glibc's heap, whose freed pages stay resident: without this,
    every activation the backward pass frees still counts in its peak beside the gradients it
    allocates. The miniature never frees 256 MB (`HEAP_SLACK`), so it never trims."""

    def trim_when_reached(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        if isinstance(hidden, torch.Tensor) and hidden.requires_grad:
            hidden.register_hook(_release_freed_heap_hook)

    for layer in model.get_decoder().layers:
        layer.register_forward_hook(trim_when_reached)


def _release_freed_heap_hook(grad: torch.Tensor) -> None:
    release_freed_heap()
