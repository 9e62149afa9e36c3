"""Direct Preference Optimization: the loss as a pure function, reference log-probs, one loop.

The loop follows Rafailov et al. (2023) and their reference code (eric-mitchell/
direct-preference-optimization): chosen and rejected answers go through the policy in one
forward pass; the reference log-probs are computed once beforehand (a parquet file) or,
optionally, on the fly by a frozen copy of the starting model. That one pass either packs each
pair as [prompt, chosen, rejected], with an attention that keeps the answers apart, so the
shared prompt is computed once (`prefix_sharing`, the default; the idea of Wang et al. 2024,
"Accelerating Direct Preference Optimization with Prefix Sharing"), or runs the chosen and
rejected sequences side by side (prompt computed twice), as the DPO reference code does.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from tqdm import tqdm

from stylized_dpo.io import atomic_path
from stylized_dpo.model import load_model, load_tokenizer, resolve_device, set_chat_eos
from stylized_dpo.records import DPO_METRIC_KEYS
from stylized_dpo.train.common import (
    ConfigMixin,
    MetricsWriter,
    NullMetrics,
    Throughput,
    TokenizedChat,
    TokenizedPair,
    adamw,
    batch_to,
    collate_chats,
    collate_packed_pairs,
    collate_pair_rows,
    collate_pairs,
    completion_logps,
    config_fingerprint,
    files_digest,
    iter_chunks,
    load_checkpoint,
    lr_at,
    pair_logps,
    restore_checkpoint,
    save_checkpoint,
    save_model,
    set_lr,
    speed_options,
    steady_allocator,
    step_schedule,
)
from stylized_dpo.train.distributed import init_distributed
from stylized_dpo.train.shards import batch_lengths, example_ids, keep_share, load_pairs

if TYPE_CHECKING:
    import pandas as pd

LossType = Literal["sigmoid", "ipo", "hinge"]


@dataclass(frozen=True)
class DPOConfig(ConfigMixin):
    """DPO hyper-parameters: the config's `dpo` section merged for one dataset."""

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
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas (unused by RMSprop)."""
    weight_decay: float = 0.0
    """AdamW: decoupled decay on matrices; RMSprop: L2 penalty on every parameter (torch's)."""
    batch_size: int = 16
    """Pairs per forward pass; effective batch = `batch_size * grad_accum`."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step."""
    warmup_ratio: float = 0.1
    """Share of the steps with a linear warmup; then linear decay to 0."""
    max_grad_norm: float = 1.0
    """Gradient clipping threshold (global L2 norm)."""
    epochs: int = 1
    """Passes over the training pairs (ignored when `max_steps` is set)."""
    max_steps: int | None = None
    """When set, the number of optimizer steps (overrides `epochs`, cycling the data)."""
    eval_every: int = 10
    """Steps between evaluations on the test split (also at step 0 and at the end)."""
    checkpoint_every: int = 100
    """Steps between resumable checkpoints."""
    max_prompt_tokens: int = 256
    """Pairs whose rendered prompt is longer are dropped (counted in the log)."""
    max_completion_tokens: int = 1024
    """Pairs whose longer answer (+ `<|im_end|>`) is longer are dropped (counted in the log)."""
    seed: int = 0
    """Seeds the data order and torch."""
    device: str = "auto"
    """`auto` (CUDA when available), `cpu` or `cuda`."""
    gradient_checkpointing: bool = False
    """Recompute the policy's layer activations in the backward pass: less memory, more compute."""
    compile: bool = False
    """`torch.compile` the policy's (and reference model's) decoder; last-bit float noise."""
    prefix_sharing: bool = True
    """Pack each pair as [prompt, chosen, rejected] so the prompt is computed once (policy and
    reference); the same log-probs and gradients as the concatenated pass, to float rounding.
    Needs the SDPA attention (`load_model`'s)."""
    pair_rows_tokens: int | None = None
    """With `prefix_sharing`: pack several pairs into each row of up to this many tokens
    (block-diagonal attention, per-pair positions), so short pairs pay no padding; the same
    log-probs and gradients to float rounding. None: one pair per row."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"DPOConfig.{name} must be >= 1")
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
# Reference log-probs.


def collate(
    pairs: list[TokenizedPair], pad_id: int, prefix_sharing: bool, row_tokens: int | None = None
) -> dict:
    """The batch of a micro-batch of pairs: packed (`collate_packed_pairs`; several pairs a row
    with `row_tokens`, `collate_pair_rows`) or concatenated."""
    if row_tokens is not None:
        return collate_pair_rows(pairs, pad_id, row_tokens)
    return (collate_packed_pairs if prefix_sharing else collate_pairs)(pairs, pad_id)


def sequence_key(prompt_ids: list[int], answer_ids: list[int]) -> str:
    """The content key of one scored sequence (prompt + answer token ids)."""
    data = json.dumps([prompt_ids, answer_ids], separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:32]


@torch.no_grad()
def compute_reference_logps(
    model: torch.nn.Module,
    pairs: Sequence[TokenizedPair],
    batch_size: int,
    pad_id: int,
    prefix_sharing: bool = True,
    known: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Summed completion log-probs of the chosen and rejected answers under `model`.

    Returns one row per pair: prompt_id, chosen_logp, rejected_logp (in the order given).
    `known` maps `sequence_key`s to log-probs already computed under this model (another
    preference set with the same rejected answers, an earlier run): those sequences are not
    scored again, and every sequence scored here is added to it. Pairs with both answers
    unknown are scored together (packed when `prefix_sharing`); a lone unknown answer is scored
    as its own sequence.
    """
    import pandas as pd  # here, not at module level: the DPO loop itself never needs pandas

    model.eval()
    known = {} if known is None else known
    device = next(model.parameters()).device
    keys = [
        (sequence_key(p.prompt_ids, p.chosen_ids), sequence_key(p.prompt_ids, p.rejected_ids))
        for p in pairs
    ]
    both, singles, queued = [], [], set()
    for i, (kc, kr) in enumerate(keys):
        todo = [k for k in (kc, kr) if k not in known and k not in queued]
        queued.update(todo)
        if len(todo) == 2:
            both.append(i)
        elif todo:
            answer = pairs[i].chosen_ids if todo[0] == kc else pairs[i].rejected_ids
            singles.append(
                (todo[0], TokenizedChat(pairs[i].prompt_id, pairs[i].prompt_ids, answer))
            )

    both.sort(  # similar lengths pad little
        key=lambda i: (
            len(pairs[i].prompt_ids) + max(len(pairs[i].chosen_ids), len(pairs[i].rejected_ids))
        )
    )
    singles.sort(key=lambda item: len(item[1].input_ids))
    batches = [("pairs", chunk) for chunk in iter_chunks(both, batch_size)]
    batches += [("singles", chunk) for chunk in iter_chunks(singles, 2 * batch_size)]
    print(
        f"reference log-probs: {len(queued)} distinct sequences to score, "
        f"{2 * len(pairs) - len(queued)} of {2 * len(pairs)} reused or repeated"
    )
    for kind, chunk in tqdm(batches, desc="reference log-probs", mininterval=5.0):
        if kind == "pairs":
            batch = collate([pairs[i] for i in chunk], pad_id, prefix_sharing)
            c, r = pair_logps(model, **batch_to(batch, device)).cpu().double().chunk(2)
            for j, i in enumerate(chunk):
                known[keys[i][0]], known[keys[i][1]] = c[j].item(), r[j].item()
        else:
            batch = collate_chats([chat for _, chat in chunk], pad_id)
            logps = completion_logps(model, **batch_to(batch, device)).cpu().double()
            for (key, _), logp in zip(chunk, logps, strict=True):
                known[key] = logp.item()
    return pd.DataFrame(
        {
            "prompt_id": [p.prompt_id for p in pairs],
            "chosen_logp": [known[kc] for kc, _ in keys],
            "rejected_logp": [known[kr] for _, kr in keys],
        }
    )


def read_logp_cache(cache_dir: Path) -> dict[str, float]:
    """Every `sequence_key` -> log-prob in the cache's shards (one parquet file per job)."""
    import pyarrow.parquet as pq

    known: dict[str, float] = {}
    for shard in sorted(cache_dir.glob("*.parquet")):
        table = pq.read_table(shard, columns=["key", "logp"]).to_pydict()
        known.update(zip(table["key"], table["logp"], strict=True))
    return known


def write_logp_cache(cache_dir: Path, name: str, logps: dict[str, float]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"key": list(logps), "logp": pa.array(list(logps.values()), pa.float64())})
    with atomic_path(cache_dir / f"{name}.parquet") as tmp:
        pq.write_table(table, tmp)


def reference_logps_file(
    model_dir: str | os.PathLike[str],
    pairs_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    batch_size: int,
    max_prompt_tokens: int,
    max_completion_tokens: int,
    device: str = "auto",
    prefix_sharing: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Write the reference log-probs of a preference file as parquet (atomically).

    With `cache_dir`, sequences already scored under the same model (same weights and device,
    by content hash) are read from `cache_dir/<model digest>/`, and the new ones are added
    there as a shard named after `out_path`: the four preference sets share their rejected
    answers, so each is scored once, and a rerun scores nothing. A cached value may come from
    another batch than a fresh run's, which changes it by float rounding only.
    """
    device = resolve_device(device)
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, torch.float32, device)
    pairs = load_pairs(pairs_path, tokenizer, max_prompt_tokens, max_completion_tokens)
    shard_dir, known = None, {}
    if cache_dir is not None:
        shard_dir = Path(cache_dir) / config_fingerprint(files_digest(model_dir), device)
        known = read_logp_cache(shard_dir)
    before = dict(known)
    table = compute_reference_logps(
        model, pairs, batch_size, tokenizer.pad_token_id, prefix_sharing, known
    )
    if shard_dir is not None:
        new = {k: v for k, v in known.items() if k not in before}
        if new:
            name = Path(out_path).stem + "-" + config_fingerprint(str(out_path), sorted(new))
            write_logp_cache(shard_dir, name, new)
    with atomic_path(out_path) as tmp:
        table.to_parquet(tmp, index=False)


def read_reference_logps(
    path: str | os.PathLike[str], pairs: Sequence[TokenizedPair]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference (chosen, rejected) log-probs aligned with `pairs`, (N,) each.

    Read with pyarrow alone: importing pandas would add ~60 MB to the training process.
    """
    import pyarrow.parquet as pq

    columns = ["prompt_id", "chosen_logp", "rejected_logp"]
    table = pq.read_table(path, columns=columns).to_pydict()
    row_of = {prompt_id: i for i, prompt_id in enumerate(table["prompt_id"])}
    ids = example_ids(pairs)
    missing = [i for i in ids if i not in row_of]
    if missing:
        raise ValueError(
            f"{path} lacks reference log-probs for {len(missing)} pairs, "
            f"e.g. {missing[:3]}: recompute it with the same length filters"
        )
    rows = [row_of[i] for i in ids]
    return (
        torch.tensor([table["chosen_logp"][i] for i in rows], dtype=torch.float32),
        torch.tensor([table["rejected_logp"][i] for i in rows], dtype=torch.float32),
    )


# ----------------------------------------------------------------------------------------------
# The loop.


class DPOBatchStats:
    """Sums of per-pair metrics over pairs, averaged at the end (eval over the test set)."""

    keys = DPO_METRIC_KEYS

    def __init__(self) -> None:
        self.sums = dict.fromkeys(self.keys, 0.0)
        self.n = 0

    def add(self, losses, chosen_rewards, rejected_rewards, chosen_logps, rejected_logps) -> None:
        values = {
            "loss": losses,
            "rewards_chosen": chosen_rewards,
            "rewards_rejected": rejected_rewards,
            "reward_margin": chosen_rewards - rejected_rewards,
            "reward_accuracy": (chosen_rewards > rejected_rewards).float(),
            "logps_chosen": chosen_logps,
            "logps_rejected": rejected_logps,
        }
        for key, value in values.items():
            self.sums[key] += value.detach().sum().item()
        self.n += losses.numel()

    def all_reduce(self, dist) -> None:
        """Add up the sums of every torchrun process (no-op in one process)."""
        if dist.enabled:
            *sums, self.n = dist.sum([*self.sums.values(), self.n])
            self.sums = dict(zip(self.keys, sums, strict=True))

    def means(self) -> dict[str, float]:
        return {key: total / self.n for key, total in self.sums.items()}


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
    batch = batch_to(collate(pairs, pad_id, cfg.prefix_sharing, cfg.pair_rows_tokens), device)
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
    steady_allocator()  # resident memory flat over the steps
    dist = init_distributed(cfg.device)
    device = dist.device
    tokenizer = load_tokenizer(model_dir)
    policy = load_model(model_dir, torch.float32, device)
    speed_options(policy, cfg.gradient_checkpointing, cfg.compile)
    policy.train()
    pad_id = tokenizer.pad_token_id
    train = load_pairs(train_path, tokenizer, cfg.max_prompt_tokens, cfg.max_completion_tokens)
    test = load_pairs(test_path, tokenizer, cfg.max_prompt_tokens, cfg.max_completion_tokens)

    ref_model, ref_train, ref_test = None, None, None
    if cfg.reference_free:
        pass
    elif cfg.reference == "model":
        ref_model = load_model(model_dir, torch.float32, device).eval().requires_grad_(False)
        speed_options(ref_model, gradient_checkpointing=False, compile=cfg.compile)
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
    if cfg.optimizer == "rmsprop":
        optimizer = torch.optim.RMSprop(
            policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False
        )
    else:
        optimizer = adamw(policy, cfg.lr, cfg.betas, cfg.weight_decay)
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
                if dist.enabled:  # DDP averages over processes: scale to their sum
                    (loss * (dist.loss_scale * weight)).backward()
                else:
                    loss.backward()
            if weight:
                stats.add(*out)
                n_tokens += tokens
        stats.all_reduce(dist)
        (n_tokens,) = dist.sum([n_tokens])
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
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
