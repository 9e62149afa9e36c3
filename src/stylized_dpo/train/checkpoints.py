"""Checkpoints: weights (save_pretrained) + optimizer + RNG + step + metrics so far, written
atomically; and the final model."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from stylized_dpo.train.metrics import MetricsWriter


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


CHECKPOINT_PREFIX = "step-"


def _checkpoints(ckpt_dir: Path) -> list[Path]:
    """The complete checkpoints under `ckpt_dir`, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    found = [
        p
        for p in ckpt_dir.iterdir()
        if p.name.startswith(CHECKPOINT_PREFIX) and (p / "trainer_state.pt").exists()
    ]
    return sorted(found, key=lambda p: p.name)


def save_checkpoint(
    ckpt_dir: str | os.PathLike[str],
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    metrics: MetricsWriter,
    keep: int = 1,
) -> None:
    """Write a resumable checkpoint as `ckpt_dir/step-<step>`, then keep only the last `keep`.

    The checkpoint is written to a temporary directory and renamed into place once complete;
    older checkpoints are deleted only after that, so a crash at any point leaves at least one
    complete checkpoint. `state` must hold `step` and `fingerprint`; the LR schedule is a
    function of the step, and the data order a function of the seed and the step, so together
    with the RNG these restore the run exactly.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1 checkpoint, got {keep}")
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{CHECKPOINT_PREFIX}", dir=ckpt_dir))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    torch.save(
        {"optimizer": optimizer.state_dict(), "rng": _rng_state(), "state": state},
        tmp / "trainer_state.pt",
    )
    shutil.copyfile(metrics.path, tmp / "metrics.jsonl")
    final = ckpt_dir / f"{CHECKPOINT_PREFIX}{state['step']:09d}"
    if final.exists():  # the same step written again by a rerun
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in _checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(
    ckpt_dir: str | os.PathLike[str], fingerprint: str
) -> tuple[Path, dict[str, Any]] | None:
    """The newest complete checkpoint under `ckpt_dir` and its trainer state, if it belongs to
    this exact config (temporary directories a crash left behind are removed)."""
    ckpt_dir = Path(ckpt_dir)
    if ckpt_dir.is_dir():
        for stale in ckpt_dir.glob(f".{CHECKPOINT_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
    found = _checkpoints(ckpt_dir)
    if not found:
        return None
    saved = torch.load(found[-1] / "trainer_state.pt", weights_only=False)
    if saved["state"].get("fingerprint") != fingerprint:
        print(f"ignoring checkpoint {found[-1]}: it belongs to a different config")
        return None
    return found[-1], saved


def restore_checkpoint(
    ckpt: Path,
    saved: dict[str, Any],
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    metrics: MetricsWriter,
) -> dict[str, Any]:
    """Load weights, optimizer and RNG, and rewind metrics.jsonl to the checkpoint's rows."""
    device = str(next(model.parameters()).device)
    weights: dict[str, torch.Tensor] = {}
    for shard in sorted(ckpt.glob("model*.safetensors")):  # one file, or shards of a large model
        weights |= load_file(shard, device=device)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"checkpoint {ckpt} does not match the model: {missing} {unexpected}")
    optimizer.load_state_dict(saved["optimizer"])
    _set_rng_state(saved["rng"])
    metrics.restore(ckpt / "metrics.jsonl")
    return saved["state"]


def save_model(
    out_dir: str | os.PathLike[str], model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> None:
    """save_pretrained weights + tokenizer + chat template into `out_dir`, atomically."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
