"""The shared core of the training loops: chat tokenisation with a completion mask, length
filters, length-grouped batches, completion log-probs, LR schedules, checkpoints and metrics.

Each loop (pretrain, SFT, DPO) stays one readable function in its own module; whatever two of
them would otherwise repeat lives here.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AttentionInterface, PreTrainedModel, PreTrainedTokenizerBase
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from stylized_dpo.model import IM_END


def config_fingerprint(*parts: Any) -> str:
    """A hash of everything that changes a run's result; a checkpoint resumes only on a match."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def files_digest(*paths: str | os.PathLike[str]) -> str:
    """A content hash of input files (every file under a directory), for checkpoint fingerprints:
    a checkpoint made from other data or another starting model is never resumed."""
    h = hashlib.sha256()
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            h.update(file.name.encode())
            with open(file, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):  # noqa: B023
                    h.update(block)
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Tokenisation: a single-turn chat -> prompt ids + completion ids (answer + <|im_end|>).


@dataclass(frozen=True)
class TokenizedChat:
    """One conversation: the prompt as the chat template renders it for generation, then the
    answer followed by `<|im_end|>`; only the completion is trained on."""

    prompt_id: str
    prompt_ids: list[int]
    completion_ids: list[int]

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids

    @property
    def completion_mask(self) -> list[int]:
        return [0] * len(self.prompt_ids) + [1] * len(self.completion_ids)


@dataclass(frozen=True)
class TokenizedPair:
    """One preference pair: a shared prompt and two completions (each ending in `<|im_end|>`)."""

    prompt_id: str
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, conversations: Sequence[list[dict[str, str]]]
) -> list[list[int]]:
    """Render each conversation with `add_generation_prompt=True` and tokenise it: exactly the
    ids the model sees before it starts answering at inference time."""
    texts = [
        tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
        for m in conversations
    ]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def encode_completions(
    tokenizer: PreTrainedTokenizerBase, answers: Sequence[str]
) -> list[list[int]]:
    """Tokenise answers on their own and close each with `<|im_end|>`. The trailing newline the
    template writes after `<|im_end|>` is not trained: generation stops at `<|im_end|>`."""
    for i, answer in enumerate(answers):
        if not answer.strip():
            raise ValueError(f"completion {i} is empty: nothing to train on")
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    if im_end is None or im_end == tokenizer.unk_token_id:
        raise ValueError(f"tokenizer has no {IM_END} token")
    return [
        ids + [im_end] for ids in tokenizer(list(answers), add_special_tokens=False)["input_ids"]
    ]


def tokenize_sft(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[Any]
) -> list[TokenizedChat]:
    """SFTExample records -> TokenizedChat (prompt rendered by the chat template)."""
    prompts = encode_prompts(tokenizer, [ex.prompt_messages() for ex in examples])
    completions = encode_completions(tokenizer, [ex.assistant for ex in examples])
    return [
        TokenizedChat(ex.prompt_id, p, c)
        for ex, p, c in zip(examples, prompts, completions, strict=True)
    ]


def tokenize_pairs(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[Any]) -> list[TokenizedPair]:
    """PreferencePair records -> TokenizedPair (prompt as a single user turn)."""
    prompts = encode_prompts(tokenizer, [[{"role": "user", "content": p.prompt}] for p in pairs])
    chosen = encode_completions(tokenizer, [p.chosen for p in pairs])
    rejected = encode_completions(tokenizer, [p.rejected for p in pairs])
    return [
        TokenizedPair(p.prompt_id, pr, c, r)
        for p, pr, c, r in zip(pairs, prompts, chosen, rejected, strict=True)
    ]


def filter_by_length(
    items: Sequence[TokenizedChat | TokenizedPair],
    max_prompt_tokens: int,
    max_completion_tokens: int,
    require_kept: bool = True,
) -> tuple[list[Any], dict[str, int]]:
    """Drop examples whose prompt or (longest) completion is too long, counting each reason.

    Dropping rather than truncating keeps every trained answer whole, with its `<|im_end|>`.
    Unless `require_kept` is False (one chunk of a file), dropping everything is an error.
    """
    kept, drops = [], {"prompt_too_long": 0, "completion_too_long": 0}
    for item in items:
        if isinstance(item, TokenizedChat):
            completion_len = len(item.completion_ids)
        else:
            completion_len = max(len(item.chosen_ids), len(item.rejected_ids))
        if len(item.prompt_ids) > max_prompt_tokens:
            drops["prompt_too_long"] += 1
        elif completion_len > max_completion_tokens:
            drops["completion_too_long"] += 1
        else:
            kept.append(item)
    if not kept and require_kept:
        raise ValueError(f"the length filters dropped every example ({drops})")
    return kept, drops


# ----------------------------------------------------------------------------------------------
# Batching: length-grouped micro-batches, right-padded to the longest sequence in each.


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, group_factor: int = 50
) -> list[list[int]]:
    """One epoch of micro-batches (lists of indices), shuffled by `seed`.

    Indices are shuffled, cut into chunks of `group_factor` batches, each chunk sorted by length
    so that a batch holds similar lengths (little padding), then the batches are shuffled so
    long and short ones alternate over the epoch. The last batch may be short.
    """
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=g).tolist()
    chunk = batch_size * group_factor
    batches = []
    for start in range(0, len(order), chunk):
        group = sorted(order[start : start + chunk], key=lambda i: -lengths[i])
        batches += [group[j : j + batch_size] for j in range(0, len(group), batch_size)]
    perm = torch.randperm(len(batches), generator=g).tolist()
    return [batches[i] for i in perm]


def step_schedule(
    lengths: Sequence[int],
    batch_size: int,
    grad_accum: int,
    epochs: int,
    max_steps: int | None,
    seed: int,
) -> list[list[list[int]]]:
    """The whole run as a list of optimizer steps, each a list of micro-batches of indices.

    Epoch `e` is shuffled with `seed + e`, so the data position of a resumed run is just the step
    number. As in transformers' Trainer, `max_steps` (when set) overrides `epochs`: the data is
    cycled for as many epochs as needed.
    """
    steps: list[list[list[int]]] = []
    epoch = 0
    while (max_steps is None and epoch < epochs) or (
        max_steps is not None and len(steps) < max_steps
    ):
        micro = length_grouped_batches(lengths, batch_size, seed + epoch)
        steps += [micro[i : i + grad_accum] for i in range(0, len(micro), grad_accum)]
        epoch += 1
    return steps if max_steps is None else steps[:max_steps]


def pad_right(seqs: Sequence[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def collate_chats(chats: Sequence[TokenizedChat], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask and completion_mask, (B, T) each."""
    return {
        "input_ids": pad_right([c.input_ids for c in chats], pad_id),
        "attention_mask": pad_right([[1] * len(c.input_ids) for c in chats], 0),
        "completion_mask": pad_right([c.completion_mask for c in chats], 0),
    }


def collate_pairs(pairs: Sequence[TokenizedPair], pad_id: int) -> dict[str, torch.Tensor]:
    """Chosen then rejected sequences in one (2B, T) batch: one forward pass scores both."""
    chats = [TokenizedChat(p.prompt_id, p.prompt_ids, p.chosen_ids) for p in pairs]
    chats += [TokenizedChat(p.prompt_id, p.prompt_ids, p.rejected_ids) for p in pairs]
    return collate_chats(chats, pad_id)


def collate_packed_pairs(pairs: Sequence[TokenizedPair], pad_id: int) -> dict[str, Any]:
    """Each pair as one sequence [prompt, chosen, pad, rejected, pad]: the prompt is computed once.

    Every row has two blocks: prompt + chosen right-padded to `rejected_start` (the longest
    prompt + chosen of the batch), then the rejected answer right-padded to the longest one.
    The first block is an ordinary causal sequence; the rejected block's positions restart at
    len(prompt), and its tokens attend to the row's prompt and to their own earlier tokens only
    (`packed_pairs_attention`), never to the chosen answer. Returns:

    - `input_ids`, `position_ids` (B, T); `prompt_lengths` (B,);
    - `rejected_start` (int) and `prompt_width` (int: the longest prompt);
    - `logp_index`, `logp_targets`, `logp_segment` (N,), N = completion tokens of the batch: the
      flat (B * T) position whose hidden state predicts each completion token, the token, and
      its output slot (chosen of pair b: b; rejected of pair b: B + b, as `collate_pairs`'
      order). Each answer's first token is predicted from the prompt's last position.
    """
    for p in pairs:
        if not (p.prompt_ids and p.chosen_ids and p.rejected_ids):
            raise ValueError(f"pair {p.prompt_id}: an empty prompt or answer cannot be scored")
    start = max(len(p.prompt_ids) + len(p.chosen_ids) for p in pairs)
    width = start + max(len(p.rejected_ids) for p in pairs)
    n = len(pairs)
    input_ids, position_ids, index, targets, slot = [], [], [], [], []
    for b, p in enumerate(pairs):
        n_p, n_c, n_r = len(p.prompt_ids), len(p.chosen_ids), len(p.rejected_ids)
        input_ids.append(
            p.prompt_ids
            + p.chosen_ids
            + [pad_id] * (start - n_p - n_c)
            + p.rejected_ids
            + [pad_id] * (width - start - n_r)
        )
        position_ids.append([*range(start), *range(n_p, n_p + width - start)])
        row = b * width
        # chosen token i sits at n_p + i and is predicted by the position before it
        index += [row + n_p - 1 + i for i in range(n_c)]
        # rejected token j sits at start + j; its first token is predicted by the prompt's last
        index += [row + n_p - 1] + [row + start + j - 1 for j in range(1, n_r)]
        targets += p.chosen_ids + p.rejected_ids
        slot += [b] * n_c + [n + b] * n_r
    return {
        "input_ids": torch.tensor(input_ids, dtype=torch.long),
        "position_ids": torch.tensor(position_ids, dtype=torch.long),
        "prompt_lengths": torch.tensor([len(p.prompt_ids) for p in pairs], dtype=torch.long),
        "rejected_start": start,
        "prompt_width": max(len(p.prompt_ids) for p in pairs),
        "logp_index": torch.tensor(index, dtype=torch.long),
        "logp_targets": torch.tensor(targets, dtype=torch.long),
        "logp_segment": torch.tensor(slot, dtype=torch.long),
    }


def batch_to(batch: dict[str, Any], device: str | torch.device) -> dict[str, Any]:
    """The batch's tensors on `device` (its plain ints as they are)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def collate_pair_rows(
    pairs: Sequence[TokenizedPair], pad_id: int, row_tokens: int
) -> dict[str, Any]:
    """Several pairs per row, each as [prompt, chosen, rejected] (prefix sharing), so that short
    pairs share a row instead of paying for padding.

    Pairs are placed first-fit, longest first, into rows of `row_tokens` tokens (a longer pair
    gets a row of its own); every row is right-padded to the longest. Each pair keeps its own
    positions (prompt + chosen from 0, the rejected answer restarting at len(prompt)) and the
    block-diagonal `attention_mask` (R, 1, T, T), True = may attend, gives each of its tokens
    exactly the attention of its own prompt + answer sequence: prompt and chosen causally, the
    rejected answer its prompt and itself causally, never another pair (padding attends to
    itself only, so no softmax row is empty). `logp_index`, `logp_targets`, `logp_segment` are
    those of `collate_packed_pairs` (slot b: chosen of pair b in the order given, n + b: its
    rejected answer).
    """
    for p in pairs:
        if not (p.prompt_ids and p.chosen_ids and p.rejected_ids):
            raise ValueError(f"pair {p.prompt_id}: an empty prompt or answer cannot be scored")
    size = [len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs]
    rows: list[list[int]] = []
    used: list[int] = []
    for b in sorted(range(len(pairs)), key=lambda i: -size[i]):
        row = next((r for r in range(len(rows)) if used[r] + size[b] <= row_tokens), None)
        if row is None:
            rows.append([])
            used.append(0)
            row = len(rows) - 1
        rows[row].append(b)
        used[row] += size[b]
    width, n = max(used), len(pairs)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), 1, width, width), dtype=torch.bool)
    index, targets, slot = [], [], []
    for r, members in enumerate(rows):
        o = 0
        for b in members:
            p = pairs[b]
            n_p, n_c, n_r = len(p.prompt_ids), len(p.chosen_ids), len(p.rejected_ids)
            first, rej = n_p + n_c, o + n_p + n_c  # prompt + chosen length; rejected offset
            input_ids[r, o : o + size[b]] = torch.tensor(
                p.prompt_ids + p.chosen_ids + p.rejected_ids
            )
            position_ids[r, o : o + first] = torch.arange(first)
            position_ids[r, rej : rej + n_r] = torch.arange(n_p, n_p + n_r)
            mask[r, 0, o : o + first, o : o + first] = torch.ones(first, first).tril().bool()
            mask[r, 0, rej : rej + n_r, o : o + n_p] = True
            mask[r, 0, rej : rej + n_r, rej : rej + n_r] = torch.ones(n_r, n_r).tril().bool()
            base = r * width
            index += [base + o + n_p - 1 + i for i in range(n_c)]
            index += [base + o + n_p - 1] + [base + rej + j - 1 for j in range(1, n_r)]
            targets += p.chosen_ids + p.rejected_ids
            slot += [b] * n_c + [n + b] * n_r
            o += size[b]
        pads = torch.arange(o, width)
        mask[r, 0, pads, pads] = True
    return {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "attention_mask": mask,
        "logp_index": torch.tensor(index, dtype=torch.long),
        "logp_targets": torch.tensor(targets, dtype=torch.long),
        "logp_segment": torch.tensor(slot, dtype=torch.long),
        "n_pairs": n,
    }


# ----------------------------------------------------------------------------------------------
# Attention of packed pairs: SDPA on two blocks, registered as an attention implementation.


PACKED_PAIRS_ATTENTION = "sdpa_packed_pairs"
"""The attention implementation of a model that scores packed pairs: SDPA, plus the two-block
attention of `collate_packed_pairs` batches. Not saved with the model (transformers drops
the implementation from config.json)."""


def packed_pairs_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    rejected_start: int | None = None,
    prompt_width: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention; for packed pairs (`rejected_start` given), two SDPA calls.

    Queries, keys and values are (B, heads, T, D). The first block (prompt + chosen, up to
    `rejected_start`) is plain causal attention (SDPA's `is_causal`: no mask, flash kernels).
    The rejected block's queries see the keys of the prompts (the first `prompt_width`
    positions) and of the rejected block, under `attention_mask` (B, 1, T - rejected_start,
    prompt_width + T - rejected_start): the row's own prompt, and causal within the rejected
    answer. Compared with one (T, T) masked attention, the rejected queries skip the chosen
    answers' keys (but for the chosen tokens of rows with a shorter prompt, masked out).
    """
    if rejected_start is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    cut, width = rejected_start, prompt_width
    first, _ = sdpa_attention_forward(
        module, query[:, :, :cut], key[:, :, :cut], value[:, :, :cut], None, **kwargs
    )
    keys = torch.cat([key[:, :, :width], key[:, :, cut:]], dim=2)
    values = torch.cat([value[:, :, :width], value[:, :, cut:]], dim=2)
    second, _ = sdpa_attention_forward(
        module, query[:, :, cut:], keys, values, attention_mask, **kwargs
    )
    return torch.cat([first, second], dim=1), None  # (B, T, heads, D)


AttentionInterface.register(PACKED_PAIRS_ATTENTION, packed_pairs_attention)
AttentionMaskInterface.register(PACKED_PAIRS_ATTENTION, sdpa_mask)  # other calls: SDPA's masks


def rejected_block_mask(
    prompt_lengths: torch.Tensor, prompt_width: int, rejected_width: int
) -> torch.Tensor:
    """(B, 1, R, prompt_width + R) bool, True = may attend: the rejected block's queries see
    their row's prompt keys and the rejected block causally (padding queries too: never a
    fully masked row, which would make SDPA's softmax NaN)."""
    device = prompt_lengths.device
    prompt = torch.arange(prompt_width, device=device) < prompt_lengths[:, None]  # (B, P)
    causal = torch.ones(rejected_width, rejected_width, dtype=torch.bool, device=device).tril()
    b = prompt_lengths.size(0)
    return torch.cat(
        [prompt[:, None, :].expand(b, rejected_width, -1), causal.expand(b, -1, -1)], dim=-1
    )[:, None]


# ----------------------------------------------------------------------------------------------
# Log-probs of completions.


def autocast(device: str) -> AbstractContextManager[Any]:
    """bf16 autocast on CUDA (master weights stay fp32); plain fp32 on CPU."""
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def speed_options(model: PreTrainedModel, gradient_checkpointing: bool, compile: bool) -> None:
    """Optional memory/speed settings of a model about to be trained (both off by default).

    `gradient_checkpointing` recomputes each decoder layer's activations in the backward pass
    (non-reentrant checkpoints): less memory for about one more forward pass, same maths.
    `compile` runs the decoder through `torch.compile` in place (parameter names and saved
    files are unchanged); kernels are fused, so float results may differ in the last bits.
    """
    if gradient_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:  # the older name (deprecated since)
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if compile:
        model.get_decoder().compile()


def completion_logps(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
) -> torch.Tensor:
    """Summed log-probabilities of the completion tokens of each sequence, (B,), float32.

    The backbone runs on the whole sequence, but the LM head runs only at the positions that
    predict a completion token (position t predicts token t+1): full-vocabulary logits for prompt
    and padding tokens are never built. The head and the log-softmax run in float32 outside
    autocast, so bf16 training keeps full-precision log-probs.
    """
    if not completion_mask.any(dim=1).all():
        raise ValueError("a sequence has no completion token: its loss would be undefined")
    device = input_ids.device.type
    with autocast(device):
        hidden = model.get_decoder()(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state  # (B, T, H)
    targets_mask = completion_mask[:, 1:].bool()  # (B, T-1): does position t predict a completion?
    h = hidden[:, :-1][targets_mask]  # (N, H), N = completion tokens in the batch
    targets = input_ids[:, 1:][targets_mask]  # (N,)
    row = torch.arange(input_ids.size(0), device=input_ids.device)[:, None].expand_as(targets_mask)
    return _summed_logps(model, h, targets, row[targets_mask], input_ids.size(0))


def packed_completion_logps(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    prompt_lengths: torch.Tensor,
    rejected_start: int,
    prompt_width: int,
    logp_index: torch.Tensor,
    logp_targets: torch.Tensor,
    logp_segment: torch.Tensor,
) -> torch.Tensor:
    """`completion_logps` of packed pairs (`collate_packed_pairs`): (2B,), chosen then rejected.

    One forward pass per pair over [prompt, chosen, rejected] gives each answer's tokens exactly
    the attention of their own prompt + answer sequence (`packed_pairs_attention`), so the
    log-probs equal the concatenated forward's (to float rounding), and the prompt's gradient is
    the sum of the two branches'. The model's attention must be SDPA; it is switched to
    `PACKED_PAIRS_ATTENTION` (SDPA with the packed path) on first use. On CUDA the prompt +
    chosen block runs SDPA's flash kernel (no mask); the rejected block, under a mask, runs the
    memory-efficient one.
    """
    implementation = model.config._attn_implementation
    if implementation == "sdpa":
        model.set_attn_implementation(PACKED_PAIRS_ATTENTION)
    elif implementation != PACKED_PAIRS_ATTENTION:
        raise ValueError(f"prefix sharing needs the sdpa attention, not {implementation!r}")
    mask = rejected_block_mask(prompt_lengths, prompt_width, input_ids.size(1) - rejected_start)
    with autocast(input_ids.device.type):
        hidden = model.get_decoder()(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids,
            use_cache=False,
            rejected_start=rejected_start,
            prompt_width=prompt_width,
        ).last_hidden_state  # (B, T, H)
    h = hidden.flatten(0, 1)[logp_index]  # (N, H)
    return _summed_logps(model, h, logp_targets, logp_segment, 2 * input_ids.size(0))


def pair_rows_logps(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logp_index: torch.Tensor,
    logp_targets: torch.Tensor,
    logp_segment: torch.Tensor,
    n_pairs: int,
) -> torch.Tensor:
    """`completion_logps` of a `collate_pair_rows` batch: (2 n_pairs,), chosen then rejected,
    in the pairs' order. One SDPA attention under the block-diagonal mask."""
    with autocast(input_ids.device.type):
        hidden = model.get_decoder()(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        ).last_hidden_state  # (R, T, H)
    h = hidden.flatten(0, 1)[logp_index]  # (N, H)
    return _summed_logps(model, h, logp_targets, logp_segment, 2 * n_pairs)


def pair_logps(model: PreTrainedModel, **batch: Any) -> torch.Tensor:
    """Chosen then rejected log-probs, (2B,), of a `collate_pairs`, `collate_packed_pairs` or
    `collate_pair_rows` batch (or the completion log-probs of a `collate_chats` batch)."""
    if "n_pairs" in batch:
        return pair_rows_logps(model, **batch)
    if "logp_index" in batch:
        return packed_completion_logps(model, **batch)  # type: ignore[arg-type]
    return completion_logps(model, **batch)  # type: ignore[arg-type]


def _summed_logps(
    model: PreTrainedModel,
    h: torch.Tensor,
    targets: torch.Tensor,
    slots: torch.Tensor,
    n_slots: int,
) -> torch.Tensor:
    """Sum per slot of log p(target | hidden state): the LM head and log-softmax in float32,
    outside autocast, on the N given rows only (`token_logps`)."""
    head = model.get_output_embeddings()
    with torch.autocast(h.device.type, enabled=False):
        token_logps_ = token_logps(h, head.weight, head.bias, targets)
    return torch.zeros(n_slots, device=h.device).index_add(0, slots, token_logps_)


LOGIT_CHUNK_ELEMENTS = 1 << 25
LM_HEAD_DTYPE = torch.float32
"""The dtype of the LM head's matmuls in `token_logps`; the log-softmax and the gradients
always accumulate in float32. bfloat16 halves the head's cost on a GPU (bench_gpu.py measures
it) at the price of bf16 rounding in the logits; training uses float32."""
"""Logits built at once by `token_logps`: 32 M float32 (128 MB), e.g. 220 tokens of Qwen2.5's
151,936-token vocabulary, or the whole batch of a 2,048-token one."""


def token_logps(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    chunk_tokens: int | None = None,
) -> torch.Tensor:
    """log softmax(h W^T + b)[target] of each row, (N,) float32, never holding the (N, V) logits.

    The LM head and the log-softmax run in float32 on `chunk_tokens` rows at a time (default:
    `LOGIT_CHUNK_ELEMENTS / V`) and the backward pass recomputes each chunk's logits (the idea
    of Liger's fused linear cross-entropy): one more head matmul instead of keeping N x V
    float32 log-probs, their gradient and a scatter buffer. On CUDA, Liger's fused kernel
    (`liger-kernel`, optional) does the same when installed.
    """
    liger = _liger_cross_entropy() if h.is_cuda else None
    if liger is not None:
        dtype = LM_HEAD_DTYPE
        out = liger(
            h.to(dtype), weight.to(dtype), targets, None if bias is None else bias.to(dtype)
        )
        return -out.float()
    chunk = chunk_tokens or max(1, LOGIT_CHUNK_ELEMENTS // weight.size(0))
    return _ChunkedTokenLogps.apply(h, weight, bias, targets, chunk, LM_HEAD_DTYPE)


def _liger_cross_entropy() -> Any:
    """Per-token cross-entropy of Liger's fused linear kernel, or None when not installed.
    Its per-token (reduction="none") gradients are right from liger-kernel 0.8.5 on."""
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
    except ImportError:
        return None

    def cross_entropy(h, weight, targets, bias):
        out = liger_fused_linear_cross_entropy(h, weight, targets, bias, reduction="none")
        return out[0] if isinstance(out, tuple) else getattr(out, "loss", out)

    return cross_entropy


class _ChunkedTokenLogps(torch.autograd.Function):
    """`token_logps` on CPU (and on CUDA without Liger): chunks of logits (matmuls in `dtype`,
    log-softmax in float32), recomputed in backward."""

    @staticmethod
    def forward(ctx, h, weight, bias, targets, chunk, dtype):  # type: ignore[override]
        w = weight.to(dtype)
        b = None if bias is None else bias.to(dtype)
        n = h.size(0)
        out = torch.empty(n, dtype=torch.float32, device=h.device)
        lse = torch.empty(n, dtype=torch.float32, device=h.device)
        for s in range(0, n, chunk):
            logits = F.linear(h[s : s + chunk].to(dtype), w, b).float()  # (chunk, V)
            lse[s : s + chunk] = logits.logsumexp(-1)
            picked = logits.gather(1, targets[s : s + chunk, None]).squeeze(1)
            out[s : s + chunk] = picked - lse[s : s + chunk]
        ctx.save_for_backward(h, weight, bias, targets, lse)
        ctx.chunk, ctx.dtype = chunk, dtype
        # a single chunk (a small vocabulary or batch): keep its softmax, within the chunk's
        # memory budget, rather than recompute the head in backward
        ctx.probs = None
        if n <= chunk and any(ctx.needs_input_grad[:3]):
            ctx.probs = logits.sub_(lse[:, None]).exp_()
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        h, weight, bias, targets, lse = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        with torch.autocast(h.device.type, enabled=False):
            dtype = ctx.dtype
            w = weight.to(dtype)
            b = None if bias is None else bias.to(dtype)
            grad_h = torch.empty(h.shape, dtype=torch.float32, device=h.device) if need_h else None
            grad_w = torch.zeros_like(w, dtype=torch.float32) if need_w else None
            grad_b = torch.zeros_like(b, dtype=torch.float32) if need_b else None
            g = grad_out.float()
            for s in range(0, h.size(0), ctx.chunk):
                hc = h[s : s + ctx.chunk].to(dtype)
                gc = g[s : s + ctx.chunk, None]
                # d logp[t] / d logits = onehot(t) - softmax: built in place in the logits
                if ctx.probs is not None:
                    dlogits, ctx.probs = ctx.probs, None  # consumed: a second backward recomputes
                else:
                    logits = F.linear(hc, w, b).float()
                    dlogits = logits.sub_(lse[s : s + ctx.chunk, None]).exp_()
                dlogits.mul_(-gc).scatter_add_(1, targets[s : s + ctx.chunk, None], gc)
                if dtype != torch.float32:
                    dlogits = dlogits.to(dtype)
                if need_h:
                    grad_h[s : s + ctx.chunk] = dlogits @ w
                if need_w and dtype == torch.float32:
                    grad_w.addmm_(dlogits.t(), hc)  # in place: no (V, H) temporary
                elif need_w:
                    grad_w += dlogits.t() @ hc
                if need_b:
                    grad_b += dlogits.sum(0, dtype=torch.float32)
        return (
            None if grad_h is None else grad_h.to(h.dtype),
            None if grad_w is None else grad_w.to(weight.dtype),
            None if grad_b is None else grad_b.to(bias.dtype),
            None,
            None,
            None,
        )


# ----------------------------------------------------------------------------------------------
# Learning-rate schedules (set by hand each step, as nanoGPT does: the step is the whole state).


def lr_at(
    step: int,
    total_steps: int,
    warmup_steps: int,
    base_lr: float,
    kind: str = "linear",
    min_lr_ratio: float = 0.0,
) -> float:
    """Linear warmup from 0, then linear or cosine decay to `min_lr_ratio * base_lr`.

    Matches transformers' `get_linear_schedule_with_warmup` for kind="linear", min_lr_ratio=0.
    """
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(progress, 1.0)
    if kind == "linear":
        decay = 1.0 - progress
    elif kind == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif kind == "constant":
        decay = 1.0
    else:
        raise ValueError(f"unknown schedule {kind!r}")
    return base_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * decay)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def adamw(
    model: torch.nn.Module, lr: float, betas: tuple[float, float], weight_decay: float
) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not norms or biases), as nanoGPT does."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, foreach=False)


# ----------------------------------------------------------------------------------------------
# Checkpoints: weights (save_pretrained) + optimizer + RNG + step + metrics so far, atomically.


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


# ----------------------------------------------------------------------------------------------
# Metrics: one JSON object per line, appended and flushed as training goes.


class MetricsWriter:
    """Appends rows to metrics.jsonl. A fresh run starts an empty file; a resumed run restores
    the checkpoint's copy, so rows logged after the checkpoint (then lost) are not duplicated."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def restore(self, saved_copy: Path) -> None:
        shutil.copyfile(saved_copy, self.path)

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


class NullMetrics:
    """The metrics writer of torchrun processes other than rank 0: writes nothing."""

    def restore(self, saved_copy: Path) -> None:
        pass

    def write(self, row: dict[str, Any]) -> None:
        pass


class Throughput:
    """Tokens per second of one step (wall clock, synchronised on CUDA)."""

    def __init__(self, device: str):
        self.device = device
        self.start = time.perf_counter()

    def restart(self) -> None:
        self.start = time.perf_counter()

    def tokens_per_s(self, tokens: int) -> float:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return tokens / max(time.perf_counter() - self.start, 1e-9)


MMAP_THRESHOLD = 4 << 20


def steady_allocator() -> None:
    """Have glibc map every block of `MMAP_THRESHOLD` bytes (4 MB) or more on its own, and
    unmap it when freed, for the rest of the process.

    By default glibc raises that threshold to the largest block freed so far (up to 32 MB):
    from then on activations below it come from the heap, whose freed space fragments and is
    not returned, so a training process's resident memory and peak creep up step after step
    (`bench_train.py --repeat-batch --glibc-default` shows it). A fixed threshold turns that
    off. 4 MB rather than glibc's initial 128 KB: mapping every small tensor afresh costs the
    miniature a third of its speed in page faults. A threshold the user set
    (`MALLOC_MMAP_THRESHOLD_`) is kept; no-op without glibc."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_mmap_threshold = -3  # malloc.h
    if hasattr(libc, "mallopt"):
        libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)


def iter_chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
