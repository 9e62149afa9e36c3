"""Reference log-probs of DPO: the summed completion log-probs of each pair's answers under the
starting model, computed once (a parquet file per preference set), each distinct sequence
scored once across the sets that share it (a cache keyed by model and sequence content)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from stylized_dpo.hashing import config_fingerprint, files_digest, sequence_key
from stylized_dpo.io import atomic_path
from stylized_dpo.model import load_model, load_tokenizer, resolve_device
from stylized_dpo.train.batching import batch_to, collate_chats, collate_preferences, iter_chunks
from stylized_dpo.train.logps import completion_logps, pair_logps
from stylized_dpo.train.shards import example_ids, load_pairs
from stylized_dpo.train.tokens import TokenizedChat, TokenizedPair

if TYPE_CHECKING:
    import pandas as pd


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
            batch = collate_preferences([pairs[i] for i in chunk], pad_id, prefix_sharing)
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
