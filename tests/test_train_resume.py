"""A run killed with SIGKILL and restarted ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import save_tiny_model, write_toy_files
from train_resume_harness import main

from stylized_dpo.train.reference import reference_logps_file

HARNESS = Path(__file__).with_name("train_resume_harness.py")


def run(stage: str, root: Path, out: Path, kill_at: int = 0) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(HARNESS), stage, str(root), str(out), str(kill_at)]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    if "PYTHONPATH" in os.environ:  # the package the tests import (e.g. a worktree's src/)
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def metrics_without_timing(path: Path) -> list[dict]:
    """Every logged value except tokens_per_s, which is wall-clock throughput."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "tokens_per_s"} for row in rows]


@pytest.mark.parametrize("stage", ["pretrain", "sft", "dpo"])
def test_killed_and_resumed_run_is_bitwise_identical(tmp_path, stage):
    torch.set_num_threads(1)
    paths = write_toy_files(tmp_path)
    save_tiny_model(tmp_path / "model", seed=0)
    if stage == "dpo":
        save_tiny_model(tmp_path / "sft_model", seed=1)
        for split in ("train", "test"):
            reference_logps_file(
                tmp_path / "sft_model",
                paths[f"prefs_{split}"],
                tmp_path / f"ref_{split}.parquet",
                3,
                256,
                256,
            )

    main(stage, tmp_path, tmp_path / "full")  # uninterrupted, in this process (1 thread too)

    # killed when asking for its 3rd checkpoint (after step 9): checkpoint 2 (step 6) survives,
    # and the rows of steps 6-8 already written must not be duplicated on resume
    killed = run(stage, tmp_path, tmp_path / "resumed", kill_at=3)
    assert killed.returncode == -signal.SIGKILL
    kept = sorted(p.name for p in (tmp_path / "resumed" / "ckpt").iterdir())
    assert kept == ["step-000000003", "step-000000006"]  # the last two (keep=2 in the harness)
    assert not (tmp_path / "resumed" / "model").exists()
    resumed = run(stage, tmp_path, tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr
    assert "at step 6" in resumed.stdout + resumed.stderr

    a = load_file(tmp_path / "full" / "model" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert metrics_without_timing(tmp_path / "full" / "metrics.jsonl") == metrics_without_timing(
        tmp_path / "resumed" / "metrics.jsonl"
    )
    assert not (tmp_path / "resumed" / "ckpt").exists()  # removed once the model is saved


class Saved:
    def __init__(self, path):
        self.path = path


def test_only_the_last_k_checkpoints_are_kept_and_the_newest_resumes(tmp_path):
    from train_helpers import tiny_model_and_tokenizer

    from stylized_dpo.train.checkpoints import load_checkpoint, save_checkpoint
    from stylized_dpo.train.optim import adamw

    model, tokenizer = tiny_model_and_tokenizer()
    optimizer = adamw(model, 1e-3, (0.9, 0.95), 0.0)
    metrics = tmp_path / "m.jsonl"
    metrics.write_text("")
    ckpt = tmp_path / "ckpt"
    for step in (100, 200, 300, 400):
        save_checkpoint(ckpt, model, tokenizer, optimizer, {"step": step, "fingerprint": "f"},
                        Saved(metrics), keep=2)  # fmt: skip
        names = sorted(p.name for p in ckpt.iterdir())
        assert names == [f"step-{s:09d}" for s in (100, 200, 300, 400) if step - 100 <= s <= step]
    (ckpt / ".step-crashed").mkdir()  # a checkpoint a crash left half-written
    found = load_checkpoint(ckpt, "f")
    assert found is not None and found[0].name == "step-000000400"
    assert found[1]["state"]["step"] == 400 and not (ckpt / ".step-crashed").exists()
    assert load_checkpoint(ckpt, "other config") is None
    with pytest.raises(ValueError, match="keep"):
        save_checkpoint(ckpt, model, tokenizer, optimizer, {"step": 1, "fingerprint": "f"},
                        Saved(metrics), keep=0)  # fmt: skip
