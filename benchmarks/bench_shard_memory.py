"""Memory per token of reading an SFT shard: flat int32 arrays (ours) vs Python int lists.

    .venv/bin/python benchmarks/bench_shard_memory.py [--rows 46034] [--ranks 8]
        [--modes lists,arrays,share]

Writes a synthetic tokenised SFT shard of `--rows` chats (smol-smoltalk has 460,341 train
chats; the default is a tenth of it) with realistic lengths (log-normal, prompt median ~90 and
answer median ~260 tokens, cut at the 256 / 1024 limits), then measures in a fresh subprocess
each the peak RSS (VmHWM) above the process's RSS after its imports:

- `lists`: the shard as Python lists of ids (`pyarrow` `to_pydict`, one TokenizedChat per row),
  how the shard reader used to hold it;
- `arrays`: `shards.read_shard` holding every row (one process);
- `share`: rank 0 of `--ranks` DDP processes holding only its micro-batches (`keep_share`).

Prints bytes per token of the shard for each mode and the ratio to `lists`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys
from pathlib import Path
mode, shard, tok_dir, ranks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
import numpy as np, pyarrow.parquet as pq
from stylized_dpo.model import load_tokenizer
from stylized_dpo.train.batching import step_schedule
from stylized_dpo.train.tokens import TokenizedChat
from stylized_dpo.train.distributed import Dist
from stylized_dpo.train.shards import batch_lengths, keep_share, read_shard
tokenizer = load_tokenizer(tok_dir)
from stylized_dpo.resources import process_status_mb as status_mb
base = status_mb("VmRSS")
if mode == "lists":
    data = pq.read_table(shard).to_pydict()
    items = [TokenizedChat(*r) for r in zip(data["prompt_id"], data["prompt_ids"],
                                              data["completion_ids"], strict=True)]
    del data
    lengths = batch_lengths(items)
else:
    items = read_shard("sft", shard, tokenizer, 256, 1024)
    lengths = batch_lengths(items)
    if mode == "arrays":
        items.keep(None)
    else:
        schedule = step_schedule(lengths, 8, ranks, 1, None, seed=0)  # a micro-batch each
        keep_share(items, schedule, Dist(rank=0, world_size=ranks))
        del schedule
peak = status_mb("VmHWM")  # not ru_maxrss: after exec it keeps the parent's high-water mark
print(json.dumps({"mode": mode, "base_mb": base, "peak_mb": peak, "rows": len(lengths)}))
"""


def write_shard(path: Path, tok_dir: Path, rows: int, seed: int) -> int:
    """A synthetic shard readable by `read_shard` (same metadata and columns); its token count."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from stylized_dpo.hashing import tokenizer_fingerprint
    from stylized_dpo.model import train_tokenizer
    from stylized_dpo.records import META_KEY
    from stylized_dpo.train.shards import READ_BATCH_ROWS

    tokenizer = train_tokenizer(["a synthetic shard"] * 4, vocab_size=300, model_max_length=2048)
    tokenizer.save_pretrained(tok_dir)
    rng = np.random.default_rng(seed)
    prompt = np.clip(rng.lognormal(np.log(90), 0.8, rows).astype(np.int64), 4, 256)
    answer = np.clip(rng.lognormal(np.log(260), 0.7, rows).astype(np.int64), 2, 1024)

    def column(lengths):
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        values = rng.integers(0, 151_000, int(lengths.sum()), dtype=np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))

    table = pa.table(
        {
            "prompt_id": pa.array([f"r{i}" for i in range(rows)]),
            "prompt_ids": column(prompt),
            "completion_ids": column(answer),
        }
    )
    card = {
        "kind": "sft",
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
        "max_prompt_tokens": 256,
        "max_completion_tokens": 1024,
        "drops": {},
    }
    table = table.replace_schema_metadata({META_KEY: json.dumps(card).encode()})
    pq.write_table(table, path, row_group_size=READ_BATCH_ROWS)  # as shards.write_shard
    return int(prompt.sum() + answer.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=46_034)
    parser.add_argument("--ranks", type=int, default=8)
    parser.add_argument("--modes", default="lists,arrays,share")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shard, tok_dir = Path(tmp) / "train.parquet", Path(tmp) / "tok"
        tokens = write_shard(shard, tok_dir, args.rows, args.seed)
        size_mb = shard.stat().st_size / 2**20
        print(f"shard: {args.rows} rows, {tokens:,} tokens, {size_mb:.1f} MB on disk")
        results = {}
        for mode in args.modes.split(","):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, mode, str(shard), str(tok_dir), str(args.ranks)],
                capture_output=True,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            results[mode] = (row["peak_mb"] - row["base_mb"]) * 2**20 / tokens
    print(f"{'mode':8s} {'bytes/token':>12s} {'vs lists':>9s} {'GiB at 460,341 rows':>20s}")
    for mode, per_token in results.items():
        ratio = per_token / results["lists"] if "lists" in results else float("nan")
        full = per_token * tokens * 460_341 / args.rows / 2**30
        print(f"{mode:8s} {per_token:12.2f} {ratio:9.3f} {full:20.2f}")
    print(f"(parent peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
