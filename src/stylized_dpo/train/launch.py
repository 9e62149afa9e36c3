"""Running a training stage (pretrain, sft, dpo) from its arguments, in this process or under
torchrun.

`train_stage` is what the workflow's training scripts call. Under torchrun each process runs
`python -m stylized_dpo.train.launch JOB.json` (written by `run_torchrun`), which runs the
stage's ordinary training function; that function finds its rank in torchrun's environment
(see `distributed.py`).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import torch
import torch.distributed as dist

from stylized_dpo.train.distributed import run_torchrun


def workflow_checkpoints(config: dict[str, Any], model: str) -> dict[str, Any]:
    """`checkpoint_dir` and `keep_checkpoints` of a workflow training job (config `checkpoints`).

    Read by the job from the config, not passed as rule params: where checkpoints live and how
    many are kept change no result, so changing them reruns nothing.
    """
    section = config.get("checkpoints", {})
    root = section.get("dir", "results/train")
    return {
        "checkpoint_dir": os.path.join(root, model, "checkpoint"),
        "keep_checkpoints": int(section.get("keep", 2)),
    }


def run_stage(stage: str, kwargs: dict[str, Any]) -> None:
    """Run one stage in this process; `kwargs` are its function's arguments, the config a dict."""
    kwargs = dict(kwargs)
    if stage == "sft":
        from stylized_dpo.train.sft import SFTConfig, train_sft

        config = SFTConfig.from_dict(kwargs.pop("config"))
        train_sft(**kwargs, config=config)
    elif stage == "dpo":
        from stylized_dpo.train.dpo import DPOConfig, train_dpo

        config = DPOConfig.from_dict(kwargs.pop("config"))
        train_dpo(**kwargs, config=config)
    elif stage == "pretrain":
        from stylized_dpo.train.pretrain import PretrainConfig, pretrain_base

        config = PretrainConfig.from_dict(kwargs.pop("config"))
        pretrain_base(**kwargs, config=config)
    else:
        raise ValueError(f"unknown training stage {stage!r} (sft, dpo, pretrain)")


def train_stage(stage: str, kwargs: dict[str, Any], gpus: int, threads: int) -> None:
    """A workflow training job: DDP over the job's `gpus` through torchrun when there are several
    (config compute.gpus), else this process with `threads` torch threads."""
    if gpus > 1:
        run_torchrun(stage, kwargs, gpus, threads=max(1, threads // gpus))
    else:
        torch.set_num_threads(threads)
        run_stage(stage, kwargs)


def main(spec_path: str) -> None:
    spec = json.loads(open(spec_path).read())
    torch.set_num_threads(int(spec["threads"]))
    run_stage(spec["stage"], spec["kwargs"])
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
