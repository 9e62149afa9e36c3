"""Metrics: one JSON object per line, appended and flushed as training goes, and throughput."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch


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
