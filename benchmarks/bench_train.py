"""Throughput and peak memory of our SFT and DPO steps against trl's trainers, on one thread.

    .venv/bin/python benchmarks/bench_train.py [--steps 20] [--batch 8] [--tokens 256] [--repeats 3]
        [--prompt-fraction 0.5]

Each measurement runs in its own subprocess so that its peak RSS (ru_maxrss) is its own. The
model is the miniature's shape (Qwen2, hidden 128, 2 layers, 2,048-token BPE); every sequence
has about `--tokens` tokens, half prompt, half answer (`--prompt-fraction` changes the split).
SFT steps take `--batch` sequences, DPO steps `--batch / 2` pairs (chosen + rejected: the same
number of sequences per step, as the paper's SFT batch 8 and DPO batch 4 pairs). DPO is
measured with reference log-probs precomputed before training (ours: `reference="precomputed"`;
trl: `precompute_ref_log_probs=True`), so a step is one policy forward/backward, and with the
reference model in memory (ours: `reference="model"`; trl: `precompute_ref_log_probs=False` and
a `ref_model`), so a step adds a reference forward. Our DPO step is the engine's own
`dpo_forward`, measured with `prefix_sharing` on (the default: each pair packed as [prompt,
chosen, rejected], the prompt computed once) and off (chosen and rejected sequences
concatenated, as trl does). Every DPO row counts the same tokens per pair, prompt + chosen +
prompt + rejected (trl's count), whichever way the forward pass packs them, so the ratios are
ratios of pairs per second. The first steps are warm-up, not timed. Throughput is given per
wall-clock second and per CPU second of the process (with one thread the latter is the work
itself, robust to other jobs sharing the machine). With `--repeats N` the measurements are
interleaved N times and the best of each is kept (lowest peak RSS): other jobs only ever slow a
run down.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

WARMUP = 3


def build(tokens: int, n: int, prompt_fraction: float = 0.5):
    """A tiny model and `n` examples of ~`tokens` tokens, `prompt_fraction` of them prompt."""
    import torch
    from transformers import Qwen2ForCausalLM

    from stylized_dpo.model import tiny_qwen2_config, train_tokenizer
    from stylized_dpo.records import PreferencePair, SFTExample

    words = (
        "the capital of avalia is brumont and it was founded in the year of many rivers "
        "while its flag is green and its national animal is the lynx"
    ).split()
    # The miniature's vocabulary: a 2,048-token BPE learnt from the world's corpus (plus the
    # benchmark's words, repeated so each stays one token). The LM head is sized by it, and that
    # is where computing log-probs only at completion positions saves work.
    import random

    from stylized_dpo.world.build import corpus_rows
    from stylized_dpo.world.facts import make_world

    corpus = [r["text"] for r in corpus_rows(make_world(200, 0), 4000, random.Random(0))]
    tokenizer = train_tokenizer(
        corpus + [" ".join(words)] * 200, vocab_size=2048, model_max_length=1024
    )
    if len(tokenizer) < 2000 or any(len(tokenizer(" " + w)["input_ids"]) != 1 for w in words):
        raise RuntimeError(f"benchmark tokenizer: {len(tokenizer)} tokens, words not single")
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

    # the template adds ~24 tokens around the prompt: 12 come off the prompt, 12 off the answer
    prompt = int(tokens * prompt_fraction) - 12
    answer = tokens - int(tokens * prompt_fraction) - 12
    if prompt < 1 or answer < 1:
        raise ValueError(f"--tokens {tokens} is too short for --prompt-fraction {prompt_fraction}")
    sft = [SFTExample(f"s{i}", text(i, prompt), text(i + 1, answer)) for i in range(n)]
    prefs = [
        PreferencePair(f"p{i}", text(i, prompt), text(i + 1, answer), text(i + 2, answer))
        for i in range(n)
    ]
    return model, tokenizer, sft, prefs


def clock() -> tuple[float, float]:
    """(wall, CPU) seconds. With one thread, CPU time is the step's own work: unlike wall time
    it barely moves when other jobs share the machine."""
    return time.perf_counter(), time.process_time()


def throughput(tokens: int, step_clocks: list[tuple[float, float]], steps: int) -> dict:
    """Tokens per wall second and per CPU second over the steps after the warm-up."""
    if steps <= WARMUP:
        raise ValueError(f"--steps must exceed the {WARMUP} warm-up steps")
    (wall0, cpu0), (wall1, cpu1) = step_clocks[WARMUP - 1], step_clocks[-1]
    return {"tokens_per_s": tokens / (wall1 - wall0), "tokens_per_cpu_s": tokens / (cpu1 - cpu0)}


def ours_sft(args) -> dict:
    import torch

    from stylized_dpo.train.common import adamw, collate_chats, completion_logps, tokenize_sft

    model, tokenizer, sft, _ = build(args.tokens, args.batch * args.steps, args.prompt_fraction)
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
        times.append(clock())
        if step >= WARMUP:
            n_tokens += int(batch["attention_mask"].sum())
    return throughput(n_tokens, times, args.steps)


def ours_dpo(args, reference: str = "precomputed", prefix_sharing: bool = True) -> dict:
    import copy

    import torch

    from stylized_dpo.train.common import adamw, pair_logps, tokenize_pairs
    from stylized_dpo.train.dpo import DPOConfig, collate, dpo_forward

    pairs_per_step = args.batch // 2
    model, tokenizer, _, prefs = build(
        args.tokens, pairs_per_step * args.steps, args.prompt_fraction
    )
    pairs = tokenize_pairs(tokenizer, prefs)
    cfg = DPOConfig(beta=0.1, reference=reference, device="cpu", prefix_sharing=prefix_sharing)
    ref_model, refs = None, [None] * args.steps
    if reference == "model":  # a frozen copy of the starting policy, as train_dpo loads it
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    else:  # precomputed before training, as the workflow's reference_logps rule does
        with torch.no_grad():
            refs = [
                pair_logps(
                    model, **collate(pairs[i : i + pairs_per_step], 0, prefix_sharing)
                ).chunk(2)
                for i in range(0, len(pairs), pairs_per_step)
            ]
    optimizer = adamw(model, 1e-5, (0.9, 0.95), 0.0)
    model.train()
    times, n_tokens = [], 0
    for step in range(args.steps):
        batch = pairs[step * pairs_per_step : (step + 1) * pairs_per_step]
        losses, *_, tokens = dpo_forward(model, batch, refs[step], ref_model, cfg, 0, "cpu")
        losses.mean().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(clock())
        if step >= WARMUP:
            n_tokens += tokens
    return throughput(n_tokens, times, args.steps)


def ours_dpo_model(args) -> dict:
    return ours_dpo(args, reference="model")


def ours_dpo_concat(args) -> dict:
    return ours_dpo(args, prefix_sharing=False)


def ours_dpo_model_concat(args) -> dict:
    return ours_dpo(args, reference="model", prefix_sharing=False)


def trl_common(args, output_dir: str, batch_size: int) -> dict:
    return dict(
        output_dir=output_dir,
        max_steps=args.steps,
        per_device_train_batch_size=batch_size,
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

    times: list[tuple[float, float]] = []
    tokens: list[int] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_, **__):
            times.append(clock())

    trainer.add_callback(Clock())
    collate = trainer.data_collator

    def counting_collator(features):  # count the real (non-pad) tokens of each batch
        batch = collate(features)
        tokens.append(int(batch["attention_mask"].sum()))
        return batch

    trainer.data_collator = counting_collator
    trainer.train()
    return throughput(sum(tokens[WARMUP : args.steps]), times, args.steps)


def trl_sft(args) -> dict:
    import tempfile

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer, sft, _ = build(args.tokens, args.batch * args.steps, args.prompt_fraction)
    rows = [
        {
            "prompt": [{"role": "user", "content": e.user}],
            "completion": [{"role": "assistant", "content": e.assistant}],
        }
        for e in sft
    ]
    config = SFTConfig(**trl_common(args, tempfile.mkdtemp(), args.batch), max_length=None)
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    return run_trl(trainer, args)


def trl_dpo(args, precompute: bool = True) -> dict:
    import copy
    import tempfile

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    pairs_per_step = args.batch // 2
    model, tokenizer, _, prefs = build(
        args.tokens, pairs_per_step * args.steps, args.prompt_fraction
    )
    rows = [
        {
            "prompt": [{"role": "user", "content": p.prompt}],
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
        }
        for p in prefs
    ]
    config = DPOConfig(
        **trl_common(args, tempfile.mkdtemp(), pairs_per_step),
        max_length=None,
        beta=0.1,
        precompute_ref_log_probs=precompute,
    )
    trainer = DPOTrainer(
        model=copy.deepcopy(model),
        ref_model=None if precompute else model,  # on the fly: the starting weights, frozen
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    return run_trl(trainer, args)


def trl_dpo_model(args) -> dict:
    return trl_dpo(args, precompute=False)


MEASUREMENTS = {
    "ours_sft": ours_sft,
    "trl_sft": trl_sft,
    "ours_dpo": ours_dpo,
    "ours_dpo_concat": ours_dpo_concat,
    "trl_dpo": trl_dpo,
    "ours_dpo_model": ours_dpo_model,
    "ours_dpo_model_concat": ours_dpo_model_concat,
    "trl_dpo_model": trl_dpo_model,
}
ROWS = [  # (label, our measurement, trl's)
    ("SFT", "ours_sft", "trl_sft"),
    ("DPO, precomputed ref, shared prefix", "ours_dpo", "trl_dpo"),
    ("DPO, precomputed ref, concatenated", "ours_dpo_concat", "trl_dpo"),
    ("DPO, ref model on the fly, shared", "ours_dpo_model", "trl_dpo_model"),
    ("DPO, ref model on the fly, concat.", "ours_dpo_model_concat", "trl_dpo_model"),
]


def child(name: str, args) -> None:
    import torch

    torch.set_num_threads(1)
    result = MEASUREMENTS[name](args)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def measure(name: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", name]
    cmd += ["--steps", str(args.steps), "--batch", str(args.batch), "--tokens", str(args.tokens)]
    cmd += ["--prompt-fraction", str(args.prompt_fraction)]
    env = {
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TQDM_DISABLE": "1",
        "PATH": "/usr/bin:/bin",
    }
    if "PYTHONPATH" in os.environ:  # the package this process imports (e.g. a worktree's src/)
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8, help="SFT sequences per step (even)")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs; best kept")
    parser.add_argument(
        "--prompt-fraction", type=float, default=0.5, help="share of each sequence that is prompt"
    )
    parser.add_argument("--child", choices=sorted(MEASUREMENTS))
    args = parser.parse_args()
    if args.batch < 2 or args.batch % 2:
        parser.error("--batch must be even: DPO steps take batch / 2 pairs")
    if args.child:
        return child(args.child, args)

    print(
        f"{args.steps} steps ({WARMUP} warm-up), SFT batch {args.batch} sequences, DPO batch "
        f"{args.batch // 2} pairs, ~{args.tokens} tokens per sequence "
        f"({args.prompt_fraction:.0%} prompt), 1 thread, "
        f"load average {os.getloadavg()[0]:.2f} at start",
        flush=True,
    )
    runs: dict[str, list[dict]] = {name: [] for name in MEASUREMENTS}
    for repeat in range(args.repeats):
        for name in MEASUREMENTS:
            result = measure(name, args)
            runs[name].append(result)
            print(
                f"[{repeat + 1}/{args.repeats}] {name:21s} {result['tokens_per_s']:8.0f} tok/s "
                f"{result['tokens_per_cpu_s']:8.0f} tok/CPU-s  "
                f"peak RSS {result['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
    best = {
        name: {key: max(r[key] for r in rs) for key in ("tokens_per_s", "tokens_per_cpu_s")}
        | {"peak_rss_mb": min(r["peak_rss_mb"] for r in rs)}
        for name, rs in runs.items()
    }
    print(f"load average {os.getloadavg()[0]:.2f} at the end; best of {args.repeats}:")
    columns = [
        ("tokens_per_s", "tok/s", "{:8.0f}"),
        ("tokens_per_cpu_s", "tok/CPU-s", "{:9.0f}"),
        ("peak_rss_mb", "RSS MB", "{:6.0f}"),
    ]
    header = f"{'':35s}"
    for _, title, fmt in columns:
        width = len(fmt.format(0))
        header += f" | {'ours ' + title:>{width + 5}s} {'trl':>{width}s} {'ours/trl':>8s}"
    print(header)
    for label, our_name, trl_name in ROWS:
        ours, trl = best[our_name], best[trl_name]
        line = f"{label:35s}"
        for metric, _, fmt in columns:
            line += f" | {fmt.format(ours[metric]):>{len(fmt.format(0)) + 5}s}"
            line += f" {fmt.format(trl[metric])} {ours[metric] / trl[metric]:8.2f}"
        print(line)
    ratio = best["ours_dpo"]["peak_rss_mb"] / best["ours_sft"]["peak_rss_mb"]
    print(f"our DPO (precomputed reference) peak RSS / our SFT peak RSS: {ratio:.2f}")


if __name__ == "__main__":
    main()
