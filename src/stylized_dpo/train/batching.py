"""Batches: length-grouped micro-batches, the step schedule of a whole run, and the collation of
chats and preference pairs (side by side, packed as [prompt, chosen, rejected], or several pairs
a row), right-padded to the longest sequence of each batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from stylized_dpo.train.tokens import TokenizedChat, TokenizedPair

GROUP_FACTOR = 50
"""Batches' worth of examples sorted by length together (`length_grouped_batches`)."""


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, group_factor: int = GROUP_FACTOR
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


def collate_preferences(
    pairs: Sequence[TokenizedPair],
    pad_id: int,
    prefix_sharing: bool,
    row_tokens: int | None = None,
) -> dict[str, Any]:
    """The batch of a micro-batch of pairs: packed (`collate_packed_pairs`; several pairs a row
    with `row_tokens`, `collate_pair_rows`) or concatenated."""
    if row_tokens is not None:
        return collate_pair_rows(pairs, pad_id, row_tokens)
    return (collate_packed_pairs if prefix_sharing else collate_pairs)(pairs, pad_id)


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
    positions (prompt + chosen from 0, the rejected answer restarting at len(prompt)), and
    `pair_segments` (per row, each pair's (offset, prompt, chosen, rejected lengths)) gives each
    of its tokens exactly the attention of its own prompt + answer sequence
    (`pair_rows_attention`: the block-diagonal `pair_rows_mask`, computed in blocks).
    `logp_index`, `logp_targets`, `logp_segment` are those of `collate_packed_pairs` (slot b:
    chosen of pair b in the order given, n + b: its rejected answer).
    """
    for p in pairs:
        if not (p.prompt_ids and p.chosen_ids and p.rejected_ids):
            raise ValueError(f"pair {p.prompt_id}: an empty prompt or answer cannot be scored")
    size = [len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs]
    rows = first_fit_rows(size, row_tokens)
    width, n = max(sum(size[b] for b in row) for row in rows), len(pairs)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    segments: list[tuple[tuple[int, int, int, int], ...]] = []
    index, targets, slot = [], [], []
    for r, members in enumerate(rows):
        o = 0
        row_segments = []
        for b in members:
            p = pairs[b]
            n_p, n_c, n_r = len(p.prompt_ids), len(p.chosen_ids), len(p.rejected_ids)
            first, rej = n_p + n_c, o + n_p + n_c  # prompt + chosen length; rejected offset
            input_ids[r, o : o + size[b]] = torch.tensor(
                p.prompt_ids + p.chosen_ids + p.rejected_ids
            )
            position_ids[r, o : o + first] = torch.arange(first)
            position_ids[r, rej : rej + n_r] = torch.arange(n_p, n_p + n_r)
            row_segments.append((o, n_p, n_c, n_r))
            base = r * width
            index += [base + o + n_p - 1 + i for i in range(n_c)]
            index += [base + o + n_p - 1] + [base + rej + j - 1 for j in range(1, n_r)]
            targets += p.chosen_ids + p.rejected_ids
            slot += [b] * n_c + [n + b] * n_r
            o += size[b]
        segments.append(tuple(row_segments))
    return _rows_batch(input_ids, position_ids, segments, index, targets, slot, 2 * n)


def collate_chat_rows(
    chats: Sequence[TokenizedChat], pad_id: int, row_tokens: int
) -> dict[str, Any]:
    """Several chats per row (SFT packing), placed as `collate_pair_rows` places pairs, so that
    short chats share a row instead of paying for padding.

    Each chat restarts its positions at 0 and is one causal block of the row: its segment in
    `pair_segments` is (offset, length, 0, 0), a pair without answers, so `pair_rows_attention`
    gives it exactly its own causal attention. `logp_index`, `logp_targets`, `logp_segment`:
    the flat position predicting each completion token, the token, and its chat (slot b: chat b
    in the order given), so the summed log-probs are `collate_chats`' to float rounding.
    """
    size = [len(c.input_ids) for c in chats]
    if min(size) < 2:
        raise ValueError("a chat of fewer than 2 tokens has nothing to predict")
    rows = first_fit_rows(size, row_tokens)
    width = max(sum(size[b] for b in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    segments, index, targets, slot = [], [], [], []
    for r, members in enumerate(rows):
        o, row_segments = 0, []
        for b in members:
            chat = chats[b]
            input_ids[r, o : o + size[b]] = torch.tensor(chat.input_ids)
            position_ids[r, o : o + size[b]] = torch.arange(size[b])
            row_segments.append((o, size[b], 0, 0))
            predicted = [t for t in range(1, size[b]) if chat.completion_mask[t]]
            index += [r * width + o + t - 1 for t in predicted]
            targets += [chat.input_ids[t] for t in predicted]
            slot += [b] * len(predicted)
            o += size[b]
        segments.append(tuple(row_segments))
    return _rows_batch(input_ids, position_ids, segments, index, targets, slot, len(chats))


def _rows_batch(
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    segments: list[tuple[tuple[int, int, int, int], ...]],
    index: list[int],
    targets: list[int],
    slot: list[int],
    n_slots: int,
) -> dict[str, Any]:
    """The batch of rows of several pairs or chats (`pair_rows_logps` reads it)."""
    return {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "pair_segments": tuple(segments),
        "logp_index": torch.tensor(index, dtype=torch.long),
        "logp_targets": torch.tensor(targets, dtype=torch.long),
        "logp_segment": torch.tensor(slot, dtype=torch.long),
        "n_slots": n_slots,
    }


def collate_sft(
    chats: Sequence[TokenizedChat], pad_id: int, row_tokens: int | None = None
) -> dict[str, Any]:
    """The batch of a micro-batch of chats: one a row (`collate_chats`) or, with `row_tokens`,
    several (`collate_chat_rows`)."""
    if row_tokens is None:
        return collate_chats(chats, pad_id)
    return collate_chat_rows(chats, pad_id, row_tokens)


def first_fit_rows(sizes: Sequence[int], row_tokens: int) -> list[list[int]]:
    """Indices of `sizes` placed first-fit, longest first, into rows of up to `row_tokens`
    (an item longer than that gets a row of its own)."""
    rows: list[list[int]] = []
    used: list[int] = []
    for b in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        row = next((r for r in range(len(rows)) if used[r] + sizes[b] <= row_tokens), None)
        if row is None:
            rows.append([])
            used.append(0)
            row = len(rows) - 1
        rows[row].append(b)
        used[row] += sizes[b]
    return rows


def iter_chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
