"""DPO: the preference loss and per-pair log-probs/rewards against trl 1.16's DPOTrainer (with
the concatenated forward pass, and with prefix sharing), and the first logged step of a real run
(policy == reference, so the loss is ln 2)."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from train_helpers import save_tiny_model, tiny_model_and_tokenizer, toy_world, write_toy_files

from stylized_dpo.train.batching import collate_preferences as collate
from stylized_dpo.train.dpo import DPOConfig, preference_loss, train_dpo
from stylized_dpo.train.logps import pair_logps
from stylized_dpo.train.reference import reference_logps_file
from stylized_dpo.train.tokens import tokenize_pairs

torch.set_num_threads(1)
BETA = 0.3


@pytest.fixture(scope="module")
def policy_ref_pairs():
    policy, tokenizer = tiny_model_and_tokenizer(seed=0)
    ref = copy.deepcopy(policy)
    with torch.no_grad():  # a reference that differs from the policy, so rewards are not zero
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    policy.train(), ref.eval()
    records = toy_world()["prefs"][:6]
    return policy, ref, tokenizer, records, tokenize_pairs(tokenizer, records)


def trl_trainer(policy, ref, tokenizer, records, loss_type, tmp_path):
    from datasets import Dataset
    from trl import DPOConfig as TrlDPOConfig
    from trl import DPOTrainer

    args = TrlDPOConfig(
        output_dir=str(tmp_path),
        beta=BETA,
        loss_type=[loss_type],
        bf16=False,
        use_cpu=True,
        report_to="none",
        precompute_ref_log_probs=False,
        per_device_train_batch_size=len(records),
    )
    rows = [
        {
            "prompt": [{"role": "user", "content": r.prompt}],
            "chosen": [{"role": "assistant", "content": r.chosen}],
            "rejected": [{"role": "assistant", "content": r.rejected}],
        }
        for r in records
    ]
    # trl patches model.forward in place: hand it copies
    return DPOTrainer(
        model=copy.deepcopy(policy),
        ref_model=copy.deepcopy(ref),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )


@pytest.mark.parametrize(
    ("loss_type", "prefix_sharing"),
    [("sigmoid", False), ("ipo", False), ("hinge", False), ("sigmoid", True)],
)
def test_preference_loss_matches_trl(policy_ref_pairs, loss_type, prefix_sharing, tmp_path):
    policy, ref, tokenizer, records, pairs = policy_ref_pairs
    trainer = trl_trainer(policy, ref, tokenizer, records, loss_type, tmp_path)
    trainer.model.train()

    batch = collate(pairs, tokenizer.pad_token_id, prefix_sharing)
    policy_c, policy_r = pair_logps(policy, **batch).chunk(2)
    with torch.no_grad():
        ref_c, ref_r = pair_logps(ref, **batch).chunk(2)
    lengths = (
        torch.tensor([len(p.chosen_ids) for p in pairs], dtype=torch.float32),
        torch.tensor([len(p.rejected_ids) for p in pairs], dtype=torch.float32),
    )
    losses, rewards_c, rewards_r = preference_loss(
        policy_c, policy_r, ref_c, ref_r, BETA, loss_type, 0.0, False, *lengths
    )

    # trl's own tokenisation agrees, except that it also trains the "\n" after <|im_end|>
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    for ours, theirs in zip(pairs, trainer.train_dataset, strict=True):
        assert theirs["prompt_ids"] == ours.prompt_ids
        assert theirs["chosen_ids"] == ours.chosen_ids + newline
        assert theirs["rejected_ids"] == ours.rejected_ids + newline

    # the same token ids through trl: our tokenisation, trl's collator, forward and loss
    features = [
        {"prompt_ids": p.prompt_ids, "chosen_ids": p.chosen_ids, "rejected_ids": p.rejected_ids}
        for p in pairs
    ]
    trl_batch = trainer.data_collator(features)
    trl_c, trl_r = trainer.compute_ref_log_probs(trainer.model, trl_batch)  # policy, per pair
    torch.testing.assert_close(policy_c.detach(), trl_c, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(policy_r.detach(), trl_r, atol=1e-5, rtol=1e-5)
    trl_loss = trainer._compute_loss(trainer.model, trl_batch, return_outputs=False)
    assert losses.mean().item() == pytest.approx(trl_loss.item(), abs=1e-5, rel=1e-5)

    # per pair: trl logs batch means, so a batch of one gives that pair's values
    for i, feature in enumerate(features):
        trainer._metrics["train"].clear()
        loss_i = trainer._compute_loss(trainer.model, trainer.data_collator([feature]), False)
        logged = {k: v[-1] for k, v in trainer._metrics["train"].items()}
        assert losses[i].item() == pytest.approx(loss_i.item(), abs=1e-5, rel=1e-5)
        assert rewards_c[i].item() == pytest.approx(logged["rewards/chosen"], abs=1e-5)
        assert rewards_r[i].item() == pytest.approx(logged["rewards/rejected"], abs=1e-5)
        margin = (rewards_c[i] - rewards_r[i]).item()
        assert margin == pytest.approx(logged["rewards/margins"], abs=1e-5)
        assert policy_c[i].item() == pytest.approx(logged["logps/chosen"], abs=1e-5, rel=1e-6)
        assert policy_r[i].item() == pytest.approx(logged["logps/rejected"], abs=1e-5, rel=1e-6)

    # gradients agree too (trl's loss is the mean over pairs)
    losses.mean().backward()
    trl_loss.backward()
    ours = torch.cat([p.grad.flatten() for p in policy.parameters()])
    theirs = torch.cat([p.grad.flatten() for p in trainer.model.parameters()])
    policy.zero_grad()
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_conservative_dpo_and_reference_free():
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(5, generator=g) * 10 for _ in range(4))
    h = (pc - rc) - (pr - rr)
    eps = 0.2
    smoothed, _, _ = preference_loss(pc, pr, rc, rr, 0.1, "sigmoid", label_smoothing=eps)
    expected = -(1 - eps) * F.logsigmoid(0.1 * h) - eps * F.logsigmoid(-0.1 * h)
    torch.testing.assert_close(smoothed, expected)
    plain, _, _ = preference_loss(pc, pr, rc, rr, 0.1)
    torch.testing.assert_close(plain, -F.logsigmoid(0.1 * h))
    free, rewards_c, _ = preference_loss(pc, pr, rc, rr, 0.1, reference_free=True)
    torch.testing.assert_close(free, -F.logsigmoid(0.1 * (pc - pr)))
    torch.testing.assert_close(rewards_c, 0.1 * pc)
    with pytest.raises(ValueError, match="sigmoid loss only"):
        preference_loss(pc, pr, rc, rr, 0.1, "ipo", label_smoothing=0.1)


@pytest.mark.parametrize("reference", ["precomputed", "model"])
def test_step_zero_loss_is_ln2(tmp_path, reference):
    paths = write_toy_files(tmp_path)
    model_dir = save_tiny_model(tmp_path / "sft")
    refs = {}
    if reference == "precomputed":
        for split in ("train", "test"):
            refs[split] = tmp_path / f"ref_{split}.parquet"
            reference_logps_file(model_dir, paths[f"prefs_{split}"], refs[split], 3, 256, 256)
    cfg = DPOConfig(
        reference=reference, lr=1e-3, batch_size=3, max_steps=4, eval_every=2, warmup_ratio=0.0
    )
    out = tmp_path / "dpo"
    train_dpo(
        model_dir,
        paths["prefs_train"],
        paths["prefs_test"],
        out / "model",
        out / "metrics.jsonl",
        out / "ckpt",
        cfg,
        refs.get("train"),
        refs.get("test"),
    )
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first = {r["split"]: r for r in reversed(rows) if r["step"] == 0}
    assert set(first) == {"train", "eval"}
    for row in first.values():
        assert row["loss"] == pytest.approx(math.log(2), abs=1e-5)
        assert row["reward_margin"] == pytest.approx(0.0, abs=1e-5)
    keys = {
        "step",
        "split",
        "loss",
        "rewards_chosen",
        "rewards_rejected",
        "reward_margin",
        "reward_accuracy",
        "logps_chosen",
        "logps_rejected",
    }
    assert keys | {"grad_norm", "lr", "tokens_per_s"} == set(first["train"])
    assert keys == set(first["eval"])
    last_train = [r for r in rows if r["split"] == "train"][-1]
    assert last_train["loss"] != pytest.approx(math.log(2), abs=1e-4)  # it did learn something
    assert (out / "model" / "model.safetensors").exists()
