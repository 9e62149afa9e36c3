"""Data-parallel training over several processes, launched by torchrun, synchronised by DDP.

One process (the default) runs the loops exactly as before. Under torchrun (WORLD_SIZE > 1)
each process takes every W-th micro-batch of an optimizer step; PyTorch's DistributedDataParallel
all-reduces the gradients (gloo on CPU, nccl on CUDA). The loops normalise each loss by the
whole effective batch, and DDP averages over processes, so each process scales its loss by W:
the summed gradient equals the one-process gradient of the same effective batch
(`batch_size * grad_accum`, whatever W). Only rank 0 writes metrics, checkpoints and the model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from stylized_dpo.model import resolve_device
from stylized_dpo.train.logps import pair_logps

T = TypeVar("T")


class CompletionLogps(torch.nn.Module):
    """`pair_logps` (`completion_logps` of a plain or packed batch) as a module's forward, so
    that DDP sees the forward pass it syncs."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        return pair_logps(self.model, **batch)


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank 0 of 1 unless launched by torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, items: Sequence[T]) -> Sequence[T]:
        """This process's share of `items` (every W-th); all of them in one process."""
        return items[self.rank :: self.world_size] if self.enabled else items

    def step_share(self, micro_batches: list[T]) -> tuple[list[T], float]:
        """This process's micro-batches of one step and their weight (1, or 0 for a stand-in
        micro-batch when a short step has fewer micro-batches than processes: DDP needs every
        process to run a backward pass)."""
        mine = list(self.share(micro_batches))
        return (mine, 1.0) if mine else ([micro_batches[0]], 0.0)

    @property
    def loss_scale(self) -> float:
        """DDP averages gradients over processes; the loops want their sum."""
        return float(self.world_size)

    def backward(self, loss: torch.Tensor, weight: float = 1.0) -> None:
        """The backward pass of a loss normalised by the whole effective batch: under torchrun
        scaled by W (DDP averages over processes) and by `weight` (0 for a stand-in micro-batch,
        `step_share`); as it is in one process."""
        if self.enabled:
            (loss * (self.loss_scale * weight)).backward()
        else:
            loss.backward()

    def sum(self, values: list[Any]) -> list[Any]:
        """Element-wise sum over processes (metrics only); the values unchanged in one process."""
        if not self.enabled:
            return values
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        ids = [self.local_rank] if self.device.startswith("cuda") else None
        return DistributedDataParallel(module, device_ids=ids)

    def logps_fn(self, model: torch.nn.Module) -> Callable[..., torch.Tensor]:
        """pair_logps of `model` (a batch's keywords in, log-probs out): plain in one process,
        through DDP under torchrun."""
        return self.wrap(CompletionLogps(model)) if self.enabled else partial(pair_logps, model)

    def no_sync(self, module: Any, last: bool) -> AbstractContextManager[Any]:
        """Skip DDP's all-reduce for every micro-batch of a step but the last."""
        if self.enabled and not last:
            return module.no_sync()
        return nullcontext()


def init_distributed(device: str) -> Dist:
    """Join the torchrun job when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA), else one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device)
    if world_size <= 1:
        return Dist(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(rank, world_size, local_rank, device)


def run_torchrun(stage: str, kwargs: dict[str, Any], nproc: int, threads: int = 1) -> None:
    """Run one training stage in `nproc` processes: `torchrun --standalone --nproc_per_node`.

    `kwargs` are the stage function's arguments (paths and the config as a dict), passed to
    `stylized_dpo.train.launch` through a JSON file.
    """
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "job.json"
        spec.write_text(json.dumps({"stage": stage, "threads": threads, "kwargs": kwargs}))
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "stylized_dpo.train.launch",
            str(spec),
        ]
        print("running:", " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        if proc.returncode != 0:
            raise RuntimeError(
                f"torchrun {stage} with {nproc} processes failed ({proc.returncode})"
            )
