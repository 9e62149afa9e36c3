"""Runs one training stage on the toy files in a subprocess, for the resume test.

Usage: python train_resume_harness.py STAGE ROOT OUT [KILL_AT_CHECKPOINT]
With KILL_AT_CHECKPOINT = k, the process SIGKILLs itself when the loop asks for its k-th
checkpoint, before writing it: the rows logged since checkpoint k-1 are then on disk but not in
any checkpoint, which is what a crash between checkpoints leaves behind.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch

from stylized_dpo.model import build_tokenizer
from stylized_dpo.train import dpo, pretrain, sft
from stylized_dpo.train.checkpoints import save_checkpoint


def main(stage: str, root: Path, out: Path, kill_at: int = 0) -> None:
    calls = 0

    def save_or_die(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        save_checkpoint(*args, **kwargs)

    for module in (pretrain, sft, dpo):
        module.save_checkpoint = save_or_die if kill_at else save_checkpoint

    common = (out / "model", out / "metrics.jsonl", out / "ckpt")
    if stage == "pretrain":
        arch = {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 64,
        }
        cfg = pretrain.PretrainConfig(
            steps=10,
            batch_size=4,
            block_size=32,
            warmup_steps=2,
            curriculum_steps=4,
            curriculum_entities=3,
            checkpoint_every=3,
        )
        tokenizer_dir = out / "tokenizer"
        if not tokenizer_dir.exists():  # made once per run directory, as the workflow's rule
            build_tokenizer(
                "pretrain",
                tokenizer_dir,
                corpus_path=root / "corpus.jsonl",
                chats_path=root / "sft/train.jsonl",
                vocab_size=400,
                model_max_length=64,
            )
        pretrain.pretrain_base(
            root / "corpus.jsonl", tokenizer_dir, *common, arch, cfg, keep_checkpoints=2
        )
    elif stage == "sft":
        cfg = sft.SFTConfig(
            batch_size=4, grad_accum=2, lr=1e-3, max_steps=10, eval_every=4, checkpoint_every=3
        )
        sft.train_sft(
            root / "model",
            root / "sft/train.jsonl",
            root / "sft/test.jsonl",
            *common,
            cfg,
            keep_checkpoints=2,
        )
    else:
        cfg = dpo.DPOConfig(
            lr=1e-3, batch_size=3, max_steps=10, eval_every=4, checkpoint_every=3, optimizer="adamw"
        )
        dpo.train_dpo(
            root / "sft_model",
            root / "prefs/train.jsonl",
            root / "prefs/test.jsonl",
            *common,
            cfg,
            root / "ref_train.parquet",
            root / "ref_test.parquet",
            keep_checkpoints=2,
        )


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
