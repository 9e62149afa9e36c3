"""Metrics: one JSON object per line, appended and flushed as training goes; throughput; the
sums behind the DPO rows."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from stylized_dpo.records import DPO_METRIC_KEYS


class MetricsWriter:
    """Appends rows to metrics.jsonl. A fresh run starts an empty file; a resumed run restores
    the checkpoint's copy, so rows logged after the checkpoint (then lost) are not duplicated."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def restore(self, saved_copy: Path) -> None:
        shutil.copyfile(saved_copy, self.path)

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


class NullMetrics:
    """The metrics writer of torchrun processes other than rank 0: writes nothing."""

    def restore(self, saved_copy: Path) -> None:
        pass

    def write(self, row: dict[str, Any]) -> None:
        pass


class Throughput:
    """Tokens per second of one step (wall clock, synchronised on CUDA)."""

    def __init__(self, device: str):
        self.device = device
        self.start = time.perf_counter()

    def restart(self) -> None:
        self.start = time.perf_counter()

    def tokens_per_s(self, tokens: int) -> float:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return tokens / max(time.perf_counter() - self.start, 1e-9)


class DPOBatchStats:
    """Sums of per-pair metrics over pairs, averaged at the end (eval over the test set)."""

    keys = DPO_METRIC_KEYS

    def __init__(self) -> None:
        self.sums = dict.fromkeys(self.keys, 0.0)
        self.n = 0

    def add(self, losses, chosen_rewards, rejected_rewards, chosen_logps, rejected_logps) -> None:
        values = {
            "loss": losses,
            "rewards_chosen": chosen_rewards,
            "rewards_rejected": rejected_rewards,
            "reward_margin": chosen_rewards - rejected_rewards,
            "reward_accuracy": (chosen_rewards > rejected_rewards).float(),
            "logps_chosen": chosen_logps,
            "logps_rejected": rejected_logps,
        }
        for key, value in values.items():
            self.sums[key] += value.detach().sum().item()
        self.n += losses.numel()

    def all_reduce(self, dist) -> None:
        """Add up the sums of every torchrun process (no-op in one process)."""
        if dist.enabled:
            *sums, self.n = dist.sum([*self.sums.values(), self.n])
            self.sums = dict(zip(self.keys, sums, strict=True))

    def means(self) -> dict[str, float]:
        return {key: total / self.n for key, total in self.sums.items()}
