"""Two processes (torchrun, gloo, CPU) train like one process with the same effective batch.

The 2-process runs go through `run_torchrun`, the launcher the workflow uses when a training
job gets more than one GPU; each process runs 1 thread. DDP sums the processes' gradients in
another order than one process accumulates them, so the curves agree to float rounding, not bit
for bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import save_tiny_model, write_toy_files

from stylized_dpo.train.distributed import Dist, run_torchrun
from stylized_dpo.train.dpo import DPOConfig, train_dpo
from stylized_dpo.train.reference import reference_logps_file
from stylized_dpo.train.sft import SFTConfig, train_sft

SFT = {"batch_size": 3, "grad_accum": 2, "lr": 1e-3, "max_steps": 5, "eval_every": 2}
DPO = {"batch_size": 2, "grad_accum": 2, "lr": 1e-3, "max_steps": 4, "eval_every": 2}
DPO |= {"optimizer": "adamw", "device": "cpu"}
SFT |= {"device": "cpu"}


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def curve(path: Path, key: str = "loss") -> list[tuple[int, str, float]]:
    return [(r["step"], r["split"], r[key]) for r in rows(path)]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ddp")
    paths = write_toy_files(root)
    save_tiny_model(root / "model", seed=0)
    for split in ("train", "test"):
        reference_logps_file(
            root / "model", paths[f"prefs_{split}"], root / f"ref_{split}.parquet", 3, 256, 256
        )
    return root, paths


def stage_kwargs(stage: str, root: Path, paths: dict, out: Path) -> dict:
    common = {
        "model_dir": str(root / "model"),
        "out_dir": str(out / "model"),
        "metrics_path": str(out / "metrics.jsonl"),
        "checkpoint_dir": str(out / "ckpt"),
    }
    if stage == "sft":
        split = {"train_path": str(paths["sft_train"]), "test_path": str(paths["sft_test"])}
        return common | split | {"config": SFT}
    return common | {
        "train_path": str(paths["prefs_train"]),
        "test_path": str(paths["prefs_test"]),
        "config": DPO,
        "ref_train_path": str(root / "ref_train.parquet"),
        "ref_test_path": str(root / "ref_test.parquet"),
    }


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_two_processes_give_the_one_process_loss_curve(toy, tmp_path, stage, capsys):
    root, paths = toy
    one = stage_kwargs(stage, root, paths, tmp_path / "one")
    if stage == "sft":
        train_sft(**one | {"config": SFTConfig.from_dict(SFT)})
    else:
        train_dpo(**one | {"config": DPOConfig.from_dict(DPO)})
    two = stage_kwargs(stage, root, paths, tmp_path / "two")
    run_torchrun(stage, two, nproc=2, threads=1)

    a, b = curve(tmp_path / "one/metrics.jsonl"), curve(tmp_path / "two/metrics.jsonl")
    with capsys.disabled():
        print(f"\n{stage} loss, 1 vs 2 processes:")
        for (step, split, la), (_, _, lb) in zip(a, b, strict=True):
            print(f"  step {step:2d} {split:5s} {la:.6f} {lb:.6f} diff {abs(la - lb):.1e}")
    assert [r[:2] for r in a] == [r[:2] for r in b]  # same steps and evaluations
    assert [r[2] for r in b] == pytest.approx([r[2] for r in a], rel=1e-5, abs=1e-6)
    if stage == "dpo":  # rewards and accuracies too
        for key in ("reward_margin", "reward_accuracy"):
            ka = curve(tmp_path / "one/metrics.jsonl", key)
            kb = curve(tmp_path / "two/metrics.jsonl", key)
            assert [r[2] for r in kb] == pytest.approx([r[2] for r in ka], rel=1e-4, abs=1e-5)
    wa = load_file(tmp_path / "one/model/model.safetensors")
    wb = load_file(tmp_path / "two/model/model.safetensors")
    assert all(torch.allclose(wa[k], wb[k], rtol=1e-4, atol=1e-6) for k in wa)
    assert not (tmp_path / "two/ckpt").exists()


def test_a_short_step_still_runs_every_process():
    """A step with fewer micro-batches than processes gives the idle process a zero-weight one."""
    assert Dist(rank=1, world_size=2).step_share([["a"]]) == ([["a"]], 0.0)
    assert Dist(rank=1, world_size=2).step_share([["a"], ["b"], ["c"]]) == ([["b"]], 1.0)
    assert Dist().step_share([["a"], ["b"]]) == ([["a"], ["b"]], 1.0)
