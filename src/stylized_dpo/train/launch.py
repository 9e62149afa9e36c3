"""Entry point of one torchrun process: `python -m stylized_dpo.train.launch JOB.json`.

Written by `run_torchrun`; runs the stage's ordinary training function, which finds its rank in
torchrun's environment (see `distributed.py`).
"""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist


def main(spec_path: str) -> None:
    spec = json.loads(open(spec_path).read())
    torch.set_num_threads(int(spec["threads"]))
    kwargs = dict(spec["kwargs"])
    stage = spec["stage"]
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
        raise ValueError(f"{spec_path}: unknown stage {stage!r} (sft, dpo, pretrain)")
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
