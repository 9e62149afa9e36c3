"""Direct Preference Optimization: the loss as a pure function and one loop.

The loop follows Rafailov et al. (2023) and their reference code (eric-mitchell/
direct-preference-optimization): chosen and rejected answers go through the policy in one
forward pass; the reference log-probs are computed once beforehand (`reference.py`'s parquet
file) or, optionally, on the fly by a frozen copy of the starting model. That one pass either
packs each pair as [prompt, chosen, rejected], with an attention that keeps the answers apart,
so the shared prompt is computed once (`prefix_sharing`, the default; the idea of Wang et al.
2024, "Accelerating Direct Preference Optimization with Prefix Sharing"), or runs the chosen and
rejected sequences side by side (prompt computed twice), as the DPO reference code does.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from tqdm import tqdm

from stylized_dpo.hashing import config_fingerprint, files_digest
from stylized_dpo.model import load_model, load_tokenizer, set_chat_eos
from stylized_dpo.train.batching import batch_to, collate_preferences, iter_chunks, step_schedule
from stylized_dpo.train.checkpoints import (
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
    save_model,
)
from stylized_dpo.train.distributed import init_distributed
from stylized_dpo.train.logps import pair_logps
from stylized_dpo.train.metrics import DPOBatchStats, MetricsWriter, NullMetrics, Throughput
from stylized_dpo.train.optim import ChunkedRMSprop, FinetuneConfig, lr_at, set_lr
from stylized_dpo.train.reference import read_reference_logps
from stylized_dpo.train.runtime import prepare_model, release_freed_heap, training_process
from stylized_dpo.train.shards import batch_lengths, keep_share, load_pairs
from stylized_dpo.train.tokens import TokenizedPair

LossType = Literal["sigmoid", "ipo", "hinge"]


@dataclass(frozen=True)
class DPOConfig(FinetuneConfig):
    """DPO hyper-parameters: the config's `dpo` section merged for one dataset."""

    section: ClassVar[str] = "dpo"

    loss: LossType = "sigmoid"
    """`sigmoid` (DPO), `ipo` or `hinge` (SLiC); see `preference_loss`."""
    beta: float = 0.1
    """Strength of the KL regularisation towards the reference (IPO: its tau)."""
    label_smoothing: float = 0.0
    """Conservative DPO: the assumed probability that a preference label is flipped."""
    reference_free: bool = False
    """Ignore the reference model (implicitly a uniform reference)."""
    reference: Literal["precomputed", "model"] = "precomputed"
    """Reference log-probs from the parquet file, or from a frozen model copy at each step."""
    optimizer: Literal["rmsprop", "adamw"] = "rmsprop"
    """`rmsprop` as in the DPO paper's code, or `adamw`."""
    lr: float = 1.0e-6
    """Peak learning rate."""
    weight_decay: float = 0.0
    """AdamW: decoupled decay on matrices; RMSprop: L2 penalty on every parameter (torch's)."""
    batch_size: int = 16
    """Pairs per forward pass; effective batch = `batch_size * grad_accum`."""
    eval_every: int = 10
    """Steps between evaluations on the test split (also at step 0 and at the end)."""
    prefix_sharing: bool = True
    """Pack each pair as [prompt, chosen, rejected] so the prompt is computed once (policy and
    reference); the same log-probs and gradients as the concatenated pass, to float rounding.
    Needs the SDPA attention (`load_model`'s)."""
    pair_rows_tokens: int | None = None
    """With `prefix_sharing`: pack several pairs into each row of up to this many tokens
    (block-diagonal attention, per-pair positions), so short pairs pay no padding; the same
    log-probs and gradients to float rounding. None: one pair per row."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise ValueError("DPOConfig.beta must be > 0")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError("DPOConfig.label_smoothing must be in [0, 0.5)")
        if self.label_smoothing and self.loss != "sigmoid":
            raise ValueError("label_smoothing (conservative DPO) applies to the sigmoid loss only")
        if self.pair_rows_tokens is not None and not self.prefix_sharing:
            raise ValueError(
                "DPOConfig.pair_rows_tokens packs prefix-shared pairs: needs prefix_sharing"
            )

    def make_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        if self.optimizer == "rmsprop":
            return ChunkedRMSprop(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        return super().make_optimizer(model)


def preference_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    reference_free: bool = False,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair preference losses and implicit rewards, all of shape (B,).

    Inputs are summed completion log-probs, (B,) each. With h = (log pi(y_w|x) - log ref(y_w|x))
    - (log pi(y_l|x) - log ref(y_l|x)), the difference of the two log-ratios:

    - sigmoid, DPO (Rafailov et al. 2023, Eq. 7): L = -log sigma(beta h). With label smoothing
      eps, conservative DPO (Mitchell 2023, "A note on DPO with noisy preferences"):
      L = -(1 - eps) log sigma(beta h) - eps log sigma(-beta h).
    - ipo (Azar et al. 2023, Eq. 17): L = (h - 1 / (2 beta))^2. When `chosen_lengths` and
      `rejected_lengths` are given, each log-ratio is first divided by its completion length,
      as trl does (length normalisation confirmed with the IPO authors, per trl's source).
    - hinge (SLiC, Zhao et al. 2023, Eq. 1 with the reference ratio): L = max(0, 1 - beta h).

    `reference_free` sets the reference log-probs to 0 (a uniform reference). The rewards are
    beta * log-ratio of each answer (DPO's implicit reward, Eq. 5), detached: metrics only.
    """
    if label_smoothing and loss_type != "sigmoid":
        raise ValueError("label_smoothing (conservative DPO) applies to the sigmoid loss only")
    if reference_free:
        ref_chosen_logps = torch.zeros_like(ref_chosen_logps)
        ref_rejected_logps = torch.zeros_like(ref_rejected_logps)
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    h = chosen_logratios - rejected_logratios

    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * h) * (1 - label_smoothing)
        losses = losses - F.logsigmoid(-beta * h) * label_smoothing
    elif loss_type == "ipo":
        if chosen_lengths is not None and rejected_lengths is not None:
            h = chosen_logratios / chosen_lengths.clamp(min=1) - rejected_logratios / (
                rejected_lengths.clamp(min=1)
            )
        losses = (h - 1 / (2 * beta)) ** 2
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * h)
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}; expected sigmoid, ipo or hinge")

    chosen_rewards = beta * chosen_logratios.detach()
    rejected_rewards = beta * rejected_logratios.detach()
    return losses, chosen_rewards, rejected_rewards


# ----------------------------------------------------------------------------------------------
# The loop.


def dpo_forward(
    policy: torch.nn.Module,
    pairs: list[TokenizedPair],
    ref_logps: tuple[torch.Tensor, torch.Tensor] | None,
    ref_model: torch.nn.Module | None,
    cfg: DPOConfig,
    pad_id: int,
    device: str,
    policy_logps=None,
) -> tuple[torch.Tensor, ...]:
    """Losses, rewards and policy log-probs of a micro-batch (chosen + rejected in one pass),
    and its number of tokens: prompt + chosen + prompt + rejected per pair, however the pass
    packs them (so that throughputs compare with and without prefix sharing).
    `policy_logps` replaces `pair_logps(policy, ...)` (the DDP-wrapped one under torchrun)."""
    batch = collate_preferences(pairs, pad_id, cfg.prefix_sharing, cfg.pair_rows_tokens)
    batch = batch_to(batch, device)
    if policy_logps is None:
        chosen_logps, rejected_logps = pair_logps(policy, **batch).chunk(2)
    else:
        chosen_logps, rejected_logps = policy_logps(**batch).chunk(2)
    if ref_model is not None:
        with torch.no_grad():
            ref_chosen, ref_rejected = pair_logps(ref_model, **batch).chunk(2)
    elif ref_logps is not None:
        ref_chosen, ref_rejected = (t.to(device) for t in ref_logps)
    else:  # reference_free
        ref_chosen = ref_rejected = torch.zeros_like(chosen_logps)
    lengths = (
        torch.tensor([len(p.chosen_ids) for p in pairs], dtype=torch.float32, device=device),
        torch.tensor([len(p.rejected_ids) for p in pairs], dtype=torch.float32, device=device),
    )
    losses, chosen_rewards, rejected_rewards = preference_loss(
        chosen_logps,
        rejected_logps,
        ref_chosen,
        ref_rejected,
        cfg.beta,
        cfg.loss,
        cfg.label_smoothing,
        cfg.reference_free,
        *lengths,
    )
    n_tokens = sum(2 * len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)
    return losses, chosen_rewards, rejected_rewards, chosen_logps, rejected_logps, n_tokens


def train_dpo(
    model_dir: str | os.PathLike[str],
    train_path: str | os.PathLike[str],
    test_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    metrics_path: str | os.PathLike[str],
    checkpoint_dir: str | os.PathLike[str],
    config: DPOConfig,
    ref_train_path: str | os.PathLike[str] | None = None,
    ref_test_path: str | os.PathLike[str] | None = None,
    keep_checkpoints: int = 1,
) -> None:
    """DPO of the model in `model_dir` (the SFT model, also the reference) on tokenised
    preference shards (or PreferencePair JSONL files, see `shards.load_pairs`).

    With `reference="precomputed"`, `ref_train_path`/`ref_test_path` are the parquet files of
    `reference_logps_file`. Step 0 (train and eval rows) is logged before any update, where
    policy == reference, so its sigmoid loss is ln 2.
    """
    cfg = config
    torch.manual_seed(cfg.seed)
    training_process()  # resident memory flat over the steps; denormals flushed
    dist = init_distributed(cfg.device)
    device = dist.device
    tokenizer = load_tokenizer(model_dir)
    policy = load_model(model_dir, torch.float32, device)
    prepare_model(policy, cfg.gradient_checkpointing, cfg.compile)
    policy.train()
    pad_id = tokenizer.pad_token_id
    train = load_pairs(train_path, tokenizer, cfg.max_prompt_tokens, cfg.max_completion_tokens)
    test = load_pairs(test_path, tokenizer, cfg.max_prompt_tokens, cfg.max_completion_tokens)

    ref_model, ref_train, ref_test = None, None, None
    if cfg.reference_free:
        pass
    elif cfg.reference == "model":
        ref_model = load_model(model_dir, torch.float32, device).eval().requires_grad_(False)
        prepare_model(ref_model, gradient_checkpointing=False, compile=cfg.compile)
    else:
        if ref_train_path is None or ref_test_path is None:
            raise ValueError("reference='precomputed' needs ref_train_path and ref_test_path")
        ref_train = read_reference_logps(ref_train_path, train)
        ref_test = read_reference_logps(ref_test_path, test)

    def ref_for(ref: tuple[torch.Tensor, torch.Tensor] | None, idx: list[int]):
        return None if ref is None else (ref[0][idx], ref[1][idx])

    schedule = step_schedule(
        batch_lengths(train),
        cfg.batch_size,
        cfg.grad_accum,
        cfg.epochs,
        cfg.max_steps,
        cfg.seed,
    )
    keep_share(train, schedule, dist)
    total_steps = len(schedule)
    warmup_steps = math.ceil(cfg.warmup_ratio * total_steps)
    optimizer = cfg.make_optimizer(policy)
    metrics = MetricsWriter(metrics_path) if dist.is_main else NullMetrics()
    logps = dist.logps_fn(policy) if dist.enabled else None
    digest = files_digest(
        model_dir,
        train_path,
        test_path,
        *([ref_train_path, ref_test_path] if ref_train is not None else []),
    )
    fingerprint = config_fingerprint("dpo", cfg.to_dict(), digest)

    @torch.no_grad()
    def evaluate(step: int) -> None:
        policy.eval()
        stats = DPOBatchStats()
        order = sorted(range(len(test)), key=lambda i: len(test[i].prompt_ids))
        for idx in dist.share(list(iter_chunks(order, cfg.batch_size))):
            idx = list(idx)
            out = dpo_forward(
                policy,
                [test[i] for i in idx],
                ref_for(ref_test, idx),
                ref_model,
                cfg,
                pad_id,
                device,
            )
            stats.add(*out[:5])
        stats.all_reduce(dist)
        metrics.write({"step": step, "split": "eval", **stats.means()})
        policy.train()

    step = 0
    if found := load_checkpoint(checkpoint_dir, fingerprint):
        step = restore_checkpoint(*found, policy, optimizer, metrics)["step"]
        print(f"resumed from {found[0]} at step {step}")
    print(
        f"{total_steps} steps, {warmup_steps} warmup, effective batch "
        f"{cfg.batch_size * cfg.grad_accum} pairs, loss {cfg.loss}, beta {cfg.beta}, "
        f"{cfg.optimizer}, device {device}, {dist.world_size} process(es)"
    )

    timer = Throughput(device)
    pbar = tqdm(
        total=total_steps, initial=step, desc="dpo", mininterval=5.0, disable=not dist.is_main
    )
    while step < total_steps:
        if step % cfg.eval_every == 0:
            evaluate(step)

        lr = lr_at(step, total_steps, warmup_steps, cfg.lr)
        set_lr(optimizer, lr)
        n_pairs = sum(len(mb) for mb in schedule[step])
        stats, n_tokens = DPOBatchStats(), 0
        timer.restart()
        mine, weight = dist.step_share(schedule[step])
        for j, idx in enumerate(mine):
            with dist.no_sync(logps, last=j == len(mine) - 1):
                *out, tokens = dpo_forward(
                    policy,
                    [train[i] for i in idx],
                    ref_for(ref_train, idx),
                    ref_model,
                    cfg,
                    pad_id,
                    device,
                    logps,
                )
                loss = out[0].sum() / n_pairs  # mean over the pairs of the effective batch
                dist.backward(loss, weight)
            if weight:
                stats.add(*out)
                n_tokens += tokens
        stats.all_reduce(dist)
        (n_tokens,) = dist.sum([n_tokens])
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        release_freed_heap()
        row = {"step": step, "split": "train", **stats.means()}
        row |= {
            "grad_norm": grad_norm.item(),
            "lr": lr,
            "tokens_per_s": timer.tokens_per_s(n_tokens),
        }
        metrics.write(row)
        step += 1
        pbar.update(1)
        pbar.set_postfix(
            loss=f"{row['loss']:.4f}", margin=f"{row['reward_margin']:.3f}", refresh=False
        )
        if step % cfg.checkpoint_every == 0 and step < total_steps and dist.is_main:
            state = {"step": step, "fingerprint": fingerprint}
            save_checkpoint(
                checkpoint_dir, policy, tokenizer, optimizer, state, metrics, keep_checkpoints
            )
    pbar.close()

    evaluate(total_steps)
    if dist.is_main:
        set_chat_eos(policy, tokenizer)
        save_model(out_dir, policy, tokenizer)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
