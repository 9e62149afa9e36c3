"""Throughput and peak memory of our SFT and DPO steps against trl's trainers, on one thread.

    .venv/bin/python benchmarks/bench_train.py [--steps 20] [--batch 8] [--tokens 256]

Each measurement runs in its own subprocess so that its peak RSS (ru_maxrss) is its own. The
model is the miniature's shape (Qwen2, hidden 128, 2 layers, 2,048-token BPE); every sequence
has about `--tokens` tokens, half prompt, half answer. Reference log-probs are precomputed for
both DPO implementations (trl: `precompute_ref_log_probs=True`), so a step is the same work:
one policy forward/backward over chosen + rejected. The first steps are warm-up, not timed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

WARMUP = 3


def build(tokens: int, n: int):
    """A tiny model and `n` examples of ~`tokens` tokens (prompt and answers of equal size)."""
    import torch
    from transformers import Qwen2ForCausalLM

    from stylized_dpo.model import tiny_qwen2_config, train_tokenizer
    from stylized_dpo.records import PreferencePair, SFTExample

    words = (
        "the capital of avalia is brumont and it was founded in the year of many rivers "
        "while its flag is green and its national animal is the lynx"
    ).split()
    tokenizer = train_tokenizer([" ".join(words)] * 20, vocab_size=2048, model_max_length=1024)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(
        tiny_qwen2_config(
            tokenizer,
            hidden_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=512,
            max_position_embeddings=1024,
        )
    )
    model.config._attn_implementation = "sdpa"

    def text(i: int, k: int) -> str:  # ~k tokens (words are single tokens here)
        return " ".join(words[(i + j) % len(words)] for j in range(k))

    half = tokens // 2 - 12  # the template adds ~24 tokens around the prompt
    sft = [SFTExample(f"s{i}", text(i, half), text(i + 1, half)) for i in range(n)]
    prefs = [
        PreferencePair(f"p{i}", text(i, half), text(i + 1, half), text(i + 2, half))
        for i in range(n)
    ]
    return model, tokenizer, sft, prefs


def timed_steps(step_times: list[float], steps: int) -> float:
    return step_times[-1] - step_times[WARMUP - 1] if steps > WARMUP else float("nan")


def ours_sft(args) -> dict:
    import torch

    from stylized_dpo.train.common import adamw, collate_chats, completion_logps, tokenize_sft

    model, tokenizer, sft, _ = build(args.tokens, args.batch * args.steps)
    chats = tokenize_sft(tokenizer, sft)
    optimizer = adamw(model, 1e-3, (0.9, 0.95), 0.01)
    model.train()
    times, n_tokens = [], 0
    for step in range(args.steps):
        batch = collate_chats(chats[step * args.batch : (step + 1) * args.batch], 0)
        n = int(batch["completion_mask"].sum())
        loss = -completion_logps(model, **batch).sum() / n
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter())
        if step >= WARMUP:
            n_tokens += int(batch["attention_mask"].sum())
    return {"tokens_per_s": n_tokens / timed_steps(times, args.steps)}


def ours_dpo(args) -> dict:
    import torch

    from stylized_dpo.train.common import adamw, collate_pairs, completion_logps, tokenize_pairs
    from stylized_dpo.train.dpo import preference_loss

    model, tokenizer, _, prefs = build(args.tokens, args.batch * args.steps)
    pairs = tokenize_pairs(tokenizer, prefs)
    with torch.no_grad():  # precomputed reference, as the workflow does
        refs = [
            completion_logps(model, **collate_pairs(pairs[i : i + args.batch], 0)).chunk(2)
            for i in range(0, len(pairs), args.batch)
        ]
    optimizer = adamw(model, 1e-5, (0.9, 0.95), 0.0)
    model.train()
    times, n_tokens = [], 0
    for step in range(args.steps):
        batch = collate_pairs(pairs[step * args.batch : (step + 1) * args.batch], 0)
        chosen, rejected = completion_logps(model, **batch).chunk(2)
        losses, _, _ = preference_loss(chosen, rejected, *refs[step], beta=0.1)
        losses.mean().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter())
        if step >= WARMUP:
            n_tokens += int(batch["attention_mask"].sum())
    return {"tokens_per_s": n_tokens / timed_steps(times, args.steps)}


def trl_common(args, output_dir: str) -> dict:
    return dict(
        output_dir=output_dir,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        learning_rate=1e-5,
        bf16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        dataloader_num_workers=0,
        seed=0,
    )


def run_trl(trainer, args) -> dict:
    from transformers import TrainerCallback

    times: list[float] = []
    tokens: list[int] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_, **__):
            times.append(time.perf_counter())

    trainer.add_callback(Clock())
    collate = trainer.data_collator

    def counting_collator(features):  # count the real (non-pad) tokens of each batch
        batch = collate(features)
        tokens.append(int(batch["attention_mask"].sum()))
        return batch

    trainer.data_collator = counting_collator
    trainer.train()
    return {"tokens_per_s": sum(tokens[WARMUP : args.steps]) / timed_steps(times, args.steps)}


def trl_sft(args) -> dict:
    import tempfile

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer, sft, _ = build(args.tokens, args.batch * args.steps)
    rows = [
        {
            "prompt": [{"role": "user", "content": e.user}],
            "completion": [{"role": "assistant", "content": e.assistant}],
        }
        for e in sft
    ]
    config = SFTConfig(**trl_common(args, tempfile.mkdtemp()), max_length=None)
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    return run_trl(trainer, args)


def trl_dpo(args) -> dict:
    import copy
    import tempfile

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    model, tokenizer, _, prefs = build(args.tokens, args.batch * args.steps)
    rows = [
        {
            "prompt": [{"role": "user", "content": p.prompt}],
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
        }
        for p in prefs
    ]
    config = DPOConfig(
        **trl_common(args, tempfile.mkdtemp()),
        max_length=None,
        beta=0.1,
        precompute_ref_log_probs=True,
    )
    trainer = DPOTrainer(
        model=copy.deepcopy(model),
        ref_model=None,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    return run_trl(trainer, args)


MEASUREMENTS = {"ours_sft": ours_sft, "trl_sft": trl_sft, "ours_dpo": ours_dpo, "trl_dpo": trl_dpo}


def child(name: str, args) -> None:
    import torch

    torch.set_num_threads(1)
    result = MEASUREMENTS[name](args)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--child", choices=sorted(MEASUREMENTS))
    args = parser.parse_args()
    if args.child:
        return child(args.child, args)

    results = {}
    for name in MEASUREMENTS:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--steps",
            str(args.steps),
            "--batch",
            str(args.batch),
            "--tokens",
            str(args.tokens),
        ]
        env = {
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "TQDM_DISABLE": "1",
            "PATH": "/usr/bin:/bin",
        }
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        results[name] = json.loads(line[len("RESULT ") :])
        print(
            f"{name:9s} {results[name]['tokens_per_s']:9.0f} tok/s  "
            f"peak RSS {results[name]['peak_rss_mb']:7.0f} MB",
            flush=True,
        )
    for algo in ("sft", "dpo"):
        ours, trl = results[f"ours_{algo}"], results[f"trl_{algo}"]
        print(
            f"{algo}: ours/trl throughput x{ours['tokens_per_s'] / trl['tokens_per_s']:.2f}, "
            f"peak RSS x{ours['peak_rss_mb'] / trl['peak_rss_mb']:.2f}"
        )


if __name__ == "__main__":
    main()
