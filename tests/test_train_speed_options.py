"""Speed/memory options of the training loops: gradient checkpointing changes no result."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import (
    run_sft,
    save_tiny_model,
    tiny_model_and_tokenizer,
    toy_world,
    write_toy_files,
)

from stylized_dpo.train.batching import collate_chats
from stylized_dpo.train.dpo import DPOConfig, train_dpo
from stylized_dpo.train.logps import completion_logps
from stylized_dpo.train.runtime import prepare_model
from stylized_dpo.train.sft import SFTConfig
from stylized_dpo.train.tokens import tokenize_sft

torch.set_num_threads(1)


def test_gradient_checkpointing_gives_the_same_log_probs_and_gradients():
    grads = []
    for checkpointing in (False, True):
        model, tokenizer = tiny_model_and_tokenizer()
        prepare_model(model, gradient_checkpointing=checkpointing, compile=False)
        model.train()
        batch = collate_chats(tokenize_sft(tokenizer, toy_world()["sft"][:6]), 0)
        logps = completion_logps(model, **batch)
        logps.sum().backward()
        grads.append((logps.detach(), [p.grad.clone() for p in model.parameters()]))
    layer = model.get_decoder().layers[0]
    assert layer.gradient_checkpointing  # the option reached the layers
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=0, atol=0)
    for plain, checkpointed in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(plain, checkpointed, rtol=1e-6, atol=1e-7)


def read_train_rows(path):
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["split"] == "train"]


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_loops_accept_gradient_checkpointing(tmp_path, stage):
    """Two steps of each loop with and without the option log the same losses."""
    paths = write_toy_files(tmp_path)
    model_dir = save_tiny_model(tmp_path / "model")
    rows = []
    for checkpointing in (False, True):
        out = tmp_path / f"gc{checkpointing}"
        if stage == "sft":
            cfg = SFTConfig(
                batch_size=4,
                max_steps=2,
                lr=1e-3,
                device="cpu",
                gradient_checkpointing=checkpointing,
            )
            run_sft(model_dir, paths, out, cfg)
        else:
            cfg = DPOConfig(
                batch_size=4,
                max_steps=2,
                lr=1e-3,
                reference="model",
                device="cpu",
                gradient_checkpointing=checkpointing,
            )
            train_dpo(
                model_dir,
                paths["prefs_train"],
                paths["prefs_test"],
                out / "model",
                out / "metrics.jsonl",
                out / "ckpt",
                cfg,
            )
        rows.append(read_train_rows(out / "metrics.jsonl"))
    for plain, checkpointed in zip(*rows, strict=True):
        assert checkpointed["loss"] == pytest.approx(plain["loss"], rel=1e-5)
        assert checkpointed["grad_norm"] == pytest.approx(plain["grad_norm"], rel=1e-4)


def test_config_keys_default_off():
    for cls in (SFTConfig, DPOConfig):
        cfg = cls.from_dict({"gradient_checkpointing": True, "compile": False})
        assert cfg.gradient_checkpointing and not cfg.compile
        assert not cls().gradient_checkpointing and not cls().compile
        with pytest.raises(ValueError, match="expected bool"):
            cls.from_dict({"compile": "yes"})
