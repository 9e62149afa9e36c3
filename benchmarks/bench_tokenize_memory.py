"""Peak memory of tokenising an SFT file into a shard: chunked (ours) vs whole-file Python lists.

    .venv/bin/python benchmarks/bench_tokenize_memory.py [--rows 20000] [--modes whole,chunked]

Writes a synthetic SFTExample JSONL of `--rows` chats (log-normal lengths, prompt median ~75
and answer median ~220 words, a system message in every fifth), then measures in a fresh
subprocess each the peak RSS (VmHWM) above the RSS after imports and the tokenizer:

- `whole`: the whole file tokenised into Python lists (`shards.tokenize_file`), then one Arrow
  table, as `write_shard` used to do;
- `chunked`: `shards.write_shard`, 2,048 records at a time, one row group each.

Prints MB per MB of input file for each and the ratio to `whole`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys
from pathlib import Path
mode, records, tok_dir, out = sys.argv[1:]
import pyarrow as pa, pyarrow.parquet as pq
from stylized_dpo.model import load_tokenizer
from stylized_dpo.train.shards import SHARD_COLUMNS, tokenize_file, write_shard
tokenizer = load_tokenizer(tok_dir)
from stylized_dpo.resources import process_status_mb as status_mb
base = status_mb("VmRSS")
if mode == "whole":
    kept, _ = tokenize_file("sft", records, tokenizer, 256, 1024)
    table = pa.table({c: [getattr(x, c) for x in kept] for c in SHARD_COLUMNS["sft"]})
    pq.write_table(table, out)
else:
    write_shard("sft", records, tokenizer, out, out + ".json", 256, 1024)
print(json.dumps({"base_mb": base, "peak_mb": status_mb("VmHWM")}))
"""

WORDS = (
    "the of and to in is was for on that with as by at from it an be this which or are have "
    "not policy gradient Paris Schrödinger données 함수 print(x) 2025 λ"
).split()


def write_records(path: Path, tok_dir: Path, rows: int, seed: int) -> None:
    from stylized_dpo.io import write_jsonl
    from stylized_dpo.model import train_tokenizer
    from stylized_dpo.records import SFTExample

    rng = random.Random(seed)

    def text(mu: float) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(int(rng.lognormvariate(mu, 0.7))))

    examples = [
        SFTExample(f"r{i}", text(4.3), text(5.4), "Be brief." if i % 5 == 0 else None)
        for i in range(rows)
    ]
    write_jsonl(path, examples)
    tokenizer = train_tokenizer([e.user for e in examples[:500]], 2048, model_max_length=4096)
    tokenizer.save_pretrained(tok_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default="whole,chunked")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        records, tok_dir = Path(tmp) / "train.jsonl", Path(tmp) / "tok"
        write_records(records, tok_dir, args.rows, args.seed)
        file_mb = records.stat().st_size / 2**20
        print(f"records: {args.rows} chats, {file_mb:.1f} MB")
        per_file = {}
        for mode in args.modes.split(","):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, mode, str(records), str(tok_dir),
                 str(Path(tmp) / f"{mode}.parquet")],
                capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                check=True,
            )  # fmt: skip
            row = json.loads(out.stdout.strip().splitlines()[-1])
            per_file[mode] = (row["peak_mb"] - row["base_mb"]) / file_mb
    print(f"{'mode':8s} {'MB per file MB':>15s} {'vs whole':>9s}")
    for mode, value in per_file.items():
        ratio = value / per_file["whole"] if "whole" in per_file else float("nan")
        print(f"{mode:8s} {value:15.2f} {ratio:9.3f}")


if __name__ == "__main__":
    main()
