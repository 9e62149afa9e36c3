"""Throughput and peak memory of our SFT and DPO steps against trl's trainers, on one thread.

    .venv/bin/python benchmarks/bench_train.py [--steps 20] [--batch 8] [--tokens 256] [--repeats 3]
        [--prompt-fraction 0.5] [--gradient-checkpointing] [--only NAME,...]
    flock /tmp/heavy.lock .venv/bin/python benchmarks/bench_train.py --shape qwen2.5-0.5b
        [--layers 24] [--steps 4] [--warmup 1]

Each measurement runs in its own subprocess so that its peak RSS (ru_maxrss) is its own. The model
is the miniature's shape (Qwen2, hidden 128, 2 layers, 2,048-token BPE); every sequence has about
`--tokens` tokens, half prompt, half answer (`--prompt-fraction` changes the split). SFT steps take
`--batch` sequences, DPO steps `--batch / 2` pairs (chosen + rejected: the same number of sequences
per step, as the paper's SFT batch 8 and DPO batch 4 pairs). DPO is measured with reference
log-probs precomputed before training (ours: `reference="precomputed"`; trl:
`precompute_ref_log_probs=True`), so a step is one policy forward/backward, and with the reference
model in memory (ours: `reference="model"`; trl: `precompute_ref_log_probs=False` and a
`ref_model`), so a step adds a reference forward. Our DPO step is the engine's own `dpo_forward`,
measured with `prefix_sharing` on (the default: each pair packed as [prompt, chosen, rejected], the
prompt computed once), off (chosen and rejected sequences concatenated, as trl does), and with
several prefix-shared pairs a row (`ours_dpo_rows`: `pair_rows_tokens=--row-tokens`, each
pair its own attention, no padding between pairs; trl's own padding-free mode needs
FlashAttention). SFT is measured one chat a row (`ours_sft`) and with several chats a row
(`ours_sft_rows`: `pack_rows_tokens=--chat-row-tokens`, each chat its own causal attention).
Every DPO row counts the same tokens per pair, prompt + chosen + prompt + rejected (trl's count),
whichever way the forward pass packs them, so the ratios are ratios of pairs per second. The first
steps are warm-up, not timed. Throughput is given per wall-clock second and per CPU second of the
process (with one thread the latter is the work itself: other jobs' CPU use barely moves it, though
sharing the memory bandwidth raised it by up to 8% here). With `--repeats N` the measurements are
interleaved N times and the best of each is kept (lowest peak RSS): other jobs only ever slow a run
down.

Like for like: both sides run in float32 (trl: `bf16=False`), with the same batch, and with
gradient checkpointing on for both (`--gradient-checkpointing`) or off for both (the default;
trl's own default is on). trl runs at its best settings that work on this CPU, named in the
output: its chunked LM head (the default), `padding_free=False` (FlashAttention only),
`use_liger_kernel=False` (Triton/CUDA only), and the batches in our order
(`train_sampling_strategy="sequential"`).

`--shape qwen2.5-0.5b` is the paper's model shape with random weights: Qwen2.5-0.5B's 151,936-
token vocabulary (tied head), hidden 896, 14 heads / 2 KV heads, FFN 4,864, `--layers` decoder
layers (24 is the real model). Its texts are drawn, seeded, from real UltraFeedback's lengths in
Qwen tokens (prompt p50/p90/p99 76/435/1103, chosen 204/621/914: a log-length interpolated
between those quantiles), keeping only pairs with prompt <= 256 and answers <= 1024 tokens as the
length filter does; the rejected answer is drawn from the chosen answers' distribution. Token
ids come from the miniature's tokenizer (only the head's size matters for the cost). It prints
the floor, weights + gradients + optimizer state (16 bytes a parameter with AdamW, 12 with
RMSprop: `--dpo-optimizer`, paper.yaml's DPO optimizer), and for each step the peak
RSS of its forward + backward pass (with gradient clipping), that of its optimizer step (the
high-water mark is reset between them) and the resident memory after it.

The process settings are the engine's (`training_process`: float32 denormals flushed to zero,
for trl too unless `--keep-denormals`; glibc's mmap threshold fixed, ours only, unless
`--glibc-default`) and so are the model's (`prepare_model`: lean MLPs and RMSNorms without
checkpointing, unless `--plain-layers`).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import random
import resource
import subprocess
import sys
import time

QWEN25_05B = {  # Qwen/Qwen2.5-0.5B's config.json
    "hidden_size": 896,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "intermediate_size": 4864,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
}
QWEN25_VOCAB = 151936
# Real UltraFeedback in Qwen2.5 tokens: (quantile, tokens) of prompts and chosen answers
PROMPT_QUANTILES = ((0.5, 76), (0.9, 435), (0.99, 1103))
ANSWER_QUANTILES = ((0.5, 204), (0.9, 621), (0.99, 914))
MAX_PROMPT, MAX_ANSWER = 256, 1024  # the length filter's defaults (dpo/sft max_*_tokens)


def draw_length(rng, quantiles) -> int:
    """A length whose log is piecewise linear in the normal quantile between the given points
    (and extended linearly beyond them)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(rng.random())
    points = [(NormalDist().inv_cdf(q), math.log(n)) for q, n in quantiles]
    (z0, y0), (z1, y1) = points[:2] if z < points[1][0] else points[1:3]
    return max(1, round(math.exp(y0 + (z - z0) * (y1 - y0) / (z1 - z0))))


def real_lengths(n: int, seed: int) -> list[tuple[int, int, int]]:
    """`n` (prompt, chosen, rejected) token lengths that pass the length filter."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        p = draw_length(rng, PROMPT_QUANTILES)
        c, r = draw_length(rng, ANSWER_QUANTILES), draw_length(rng, ANSWER_QUANTILES)
        if p <= MAX_PROMPT and max(c, r) <= MAX_ANSWER:
            out.append((p, c, r))
    return out


def build(args, per_step: int, seed: int = 0):
    """A model of `--shape`, and SFT examples and preference pairs for `--steps` steps of
    `per_step` each (with `--repeat-batch`, the first step's batch again at every step)."""
    n = per_step * args.steps
    import torch
    from transformers import Qwen2ForCausalLM

    from stylized_dpo.model import tiny_qwen2_config, train_tokenizer
    from stylized_dpo.records import PreferencePair, SFTExample
    from stylized_dpo.train.batching import GROUP_FACTOR

    words = (
        "the capital of avalia is brumont and it was founded in the year of many rivers "
        "while its flag is green and its national animal is the lynx"
    ).split()
    # The miniature's vocabulary: a 2,048-token BPE learnt from the world's corpus (plus the
    # benchmark's words, repeated so each stays one token). The LM head is sized by it, and that
    # is where computing log-probs only at completion positions saves work.
    from stylized_dpo.world.build import corpus_rows
    from stylized_dpo.world.facts import make_world

    corpus = [r["text"] for r in corpus_rows(make_world(200, 0), 4000, random.Random(0))]
    tokenizer = train_tokenizer(
        corpus + [" ".join(words)] * 200, vocab_size=2048, model_max_length=2048
    )
    if len(tokenizer) < 2000 or any(len(tokenizer(" " + w)["input_ids"]) != 1 for w in words):
        raise RuntimeError(f"benchmark tokenizer: {len(tokenizer)} tokens, words not single")
    torch.manual_seed(0)
    if args.shape == "miniature":
        config = tiny_qwen2_config(
            tokenizer,
            hidden_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=512,
            max_position_embeddings=1024,
        )
    else:
        config = tiny_qwen2_config(tokenizer, num_hidden_layers=args.layers, **QWEN25_05B)
        config.vocab_size = QWEN25_VOCAB
    model = Qwen2ForCausalLM(config)
    model.config._attn_implementation = "sdpa"

    def text(i: int, k: int) -> str:  # ~k tokens (words are single tokens here)
        return " ".join(words[(i + j) % len(words)] for j in range(k))

    if args.shape == "miniature":
        # the template adds ~24 tokens around the prompt: 12 come off the prompt, 12 off the answer
        prompt = int(args.tokens * args.prompt_fraction) - 12
        answer = args.tokens - int(args.tokens * args.prompt_fraction) - 12
        if prompt < 1 or answer < 1:
            raise ValueError(f"--tokens {args.tokens} too short for --prompt-fraction")
        lengths = [(prompt, answer, answer)] * n
    else:  # drawn token lengths, less the chat template's tokens and the closing <|im_end|>
        template = (
            len(
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": "the"}], add_generation_prompt=True
                )
            )
            - 1
        )
        drawn = per_step * GROUP_FACTOR if args.grouped else per_step if args.repeat_batch else n
        lengths = [
            (max(1, p - template), max(1, c - 1), max(1, r - 1))
            for p, c, r in real_lengths(drawn, seed)
        ]
        if not args.grouped:
            lengths = (lengths * args.steps)[:n]
    sft_lengths, pref_lengths = lengths, lengths
    if args.grouped:  # as train_sft and train_dpo batch: by prompt + (longer) answer
        sft_lengths = first_grouped_steps(lengths, lambda x: x[0] + x[1], per_step, args.steps)
        pref_lengths = first_grouped_steps(
            lengths, lambda x: x[0] + max(x[1:]), per_step, args.steps
        )
    sft = [
        SFTExample(f"s{i}", text(i, p), text(i + 1, c)) for i, (p, c, _) in enumerate(sft_lengths)
    ]
    prefs = [
        PreferencePair(f"p{i}", text(i, p), text(i + 1, c), text(i + 2, r))
        for i, (p, c, r) in enumerate(pref_lengths)
    ]
    return model, tokenizer, sft, prefs


def first_grouped_steps(lengths: list, key, per_step: int, steps: int) -> list:
    """The examples of the first `steps` batches of the engine's length-grouped epoch
    (`length_grouped_batches`) over `lengths`, in order."""
    from stylized_dpo.train.batching import length_grouped_batches

    batches = length_grouped_batches([key(x) for x in lengths], per_step, seed=0)
    return [lengths[i] for batch in batches[:steps] for i in batch]


def floor_mb(model, optimizer: str = "adamw") -> float:
    """Weights + gradients + the optimizer's state, float32: 16 bytes per parameter with AdamW's
    two moments, 12 with RMSprop's one."""
    per_parameter = 16 if optimizer == "adamw" else 12
    return per_parameter * sum(p.numel() for p in model.parameters()) / 2**20


PROCESS_PEAK_MB = [0.0]  # the peak over the resets below


def rss_mb() -> tuple[float, float]:
    """(peak since the last call, current) resident memory of this process. Each call resets
    the kernel's high-water mark (/proc/self/clear_refs), so that a step's peak is its own."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    PROCESS_PEAK_MB[0] = max(PROCESS_PEAK_MB[0], peak)
    with open("/proc/self/statm") as f:
        current = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return peak, current


def process_settings(args, ours: bool) -> None:
    """The process settings of train_sft and train_dpo: flush-to-zero for both sides (unless
    `--keep-denormals`), and for ours the engine's allocator setting (unless `--glibc-default`)."""
    import torch

    torch.set_flush_denormal(not args.keep_denormals)
    if ours and not args.glibc_default:
        from stylized_dpo.train.runtime import steady_allocator

        steady_allocator()


def engine_heap_release(args) -> None:
    """Ours after each optimizer step, as the training loops do (unless `--glibc-default`)."""
    if not args.glibc_default:
        from stylized_dpo.train.runtime import release_freed_heap

        release_freed_heap()


def model_settings(model, args) -> None:
    """Our engine's model settings (`prepare_model`); `--plain-layers`: transformers' layers."""
    from stylized_dpo.train.runtime import prepare_model

    prepare_model(
        model, args.gradient_checkpointing, compile=False, lean_layers=not args.plain_layers
    )


def before_optimizer_step(memory: list) -> None:
    """Close the step's first phase (forward, backward, clipping): its own peak RSS."""
    memory.append(rss_mb()[0])


def after_step(times: list, memory: list, args) -> None:
    """Close the step: the optimizer step's own peak, and the resident memory after it."""
    if args.trim:  # hand freed heap pages back to the OS (glibc)
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    times.append(clock())
    memory[-1] = (memory[-1], *rss_mb())


def clock() -> tuple[float, float]:
    """(wall, CPU) seconds. With one thread, CPU time is the step's own work: unlike wall time
    it barely moves when other jobs share the machine."""
    return time.perf_counter(), time.process_time()


def throughput(
    tokens: int, step_clocks: list, memory: list, args, model, optimizer: str = "adamw"
) -> dict:
    """Tokens per wall second and per CPU second over the steps after the warm-up, the floor,
    and the (peak, current) RSS after each step."""
    (wall0, cpu0), (wall1, cpu1) = step_clocks[args.warmup - 1], step_clocks[-1]
    return {
        "tokens_per_s": tokens / (wall1 - wall0),
        "tokens_per_cpu_s": tokens / (cpu1 - cpu0),
        "cpu_s_per_step": (cpu1 - cpu0) / (args.steps - args.warmup),
        "tokens_per_step": tokens / (args.steps - args.warmup),
        "floor_mb": floor_mb(model, optimizer),
        "rss_by_step_mb": memory,
    }


def ours_sft(args, rows: bool = False) -> dict:
    import torch

    from stylized_dpo.train.batching import collate_sft
    from stylized_dpo.train.distributed import Dist
    from stylized_dpo.train.logps import pair_logps
    from stylized_dpo.train.optim import adamw
    from stylized_dpo.train.sft import sft_token_grad
    from stylized_dpo.train.tokens import tokenize_sft

    process_settings(args, ours=True)
    model, tokenizer, sft, _ = build(args, args.batch)
    chats = tokenize_sft(tokenizer, sft)
    model_settings(model, args)
    optimizer = adamw(model, 1e-3, (0.9, 0.95), 0.01)
    model.train()
    times, memory, n_tokens = [], [], 0
    row_tokens = args.chat_row_tokens if rows else None
    for step in range(args.steps):
        step_chats = chats[step * args.batch : (step + 1) * args.batch]
        batch = collate_sft(step_chats, 0, row_tokens)
        n = sum(len(c.completion_ids) for c in step_chats)
        token_grad = sft_token_grad(Dist(), n, 1.0)  # as train_sft: the head's early gradients
        loss = -pair_logps(model, **batch, token_grad=token_grad).sum() / n
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        before_optimizer_step(memory)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        engine_heap_release(args)
        after_step(times, memory, args)
        if step >= args.warmup:
            n_tokens += sum(len(c.input_ids) for c in step_chats)
    return throughput(n_tokens, times, memory, args, model)


def ours_sft_rows(args) -> dict:
    return ours_sft(args, rows=True)


def ours_dpo(
    args, reference: str = "precomputed", prefix_sharing: bool = True, rows: bool = False
) -> dict:
    import copy

    import torch

    from stylized_dpo.train.batching import collate_preferences
    from stylized_dpo.train.dpo import DPOConfig, dpo_forward
    from stylized_dpo.train.logps import pair_logps
    from stylized_dpo.train.tokens import tokenize_pairs

    process_settings(args, ours=True)
    pairs_per_step = args.batch // 2
    model, tokenizer, _, prefs = build(args, pairs_per_step)
    pairs = tokenize_pairs(tokenizer, prefs)
    cfg = DPOConfig(
        beta=0.1,
        reference=reference,
        device="cpu",
        prefix_sharing=prefix_sharing,
        pair_rows_tokens=args.row_tokens if rows else None,
        optimizer=args.dpo_optimizer,
        lr=1e-5,
        weight_decay=0.0,
    )
    ref_model, refs = None, [None] * args.steps
    if reference == "model":  # a frozen copy of the starting policy, as train_dpo loads it
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    else:  # precomputed before training, as the workflow's reference_logps rule does
        with torch.no_grad():
            refs = [
                pair_logps(
                    model, **collate_preferences(pairs[i : i + pairs_per_step], 0, prefix_sharing)
                ).chunk(2)
                for i in range(0, len(pairs), pairs_per_step)
            ]
    model_settings(model, args)
    optimizer = cfg.make_optimizer(model)  # the engine's: chunked AdamW or RMSprop steps
    model.train()
    times, memory, n_tokens = [], [], 0
    for step in range(args.steps):
        batch = pairs[step * pairs_per_step : (step + 1) * pairs_per_step]
        losses, *_, tokens = dpo_forward(model, batch, refs[step], ref_model, cfg, 0, "cpu")
        losses.mean().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        before_optimizer_step(memory)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        engine_heap_release(args)
        after_step(times, memory, args)
        if step >= args.warmup:
            n_tokens += tokens
    return throughput(n_tokens, times, memory, args, model, args.dpo_optimizer)


def ours_dpo_rows(args) -> dict:
    return ours_dpo(args, rows=True)


def ours_dpo_model(args) -> dict:
    return ours_dpo(args, reference="model")


def ours_dpo_concat(args) -> dict:
    return ours_dpo(args, prefix_sharing=False)


def ours_dpo_model_concat(args) -> dict:
    return ours_dpo(args, reference="model", prefix_sharing=False)


TRL_SETTINGS = (
    "trl: bf16=False, gradient_checkpointing as ours, its chunked LM head, padding_free=False "
    "(FlashAttention only), use_liger_kernel=False (CUDA only), our batch order"
)


def trl_common(args, output_dir: str, batch_size: int) -> dict:
    return dict(
        output_dir=output_dir,
        max_steps=args.steps,
        per_device_train_batch_size=batch_size,
        learning_rate=1e-5,
        bf16=False,
        gradient_checkpointing=args.gradient_checkpointing,
        padding_free=False,
        use_liger_kernel=False,
        train_sampling_strategy="sequential",
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
    memory: list = []
    tokens: list[int] = []

    class Clock(TrainerCallback):
        def on_pre_optimizer_step(self, *_, **__):  # after backward and clipping
            before_optimizer_step(memory)

        def on_step_end(self, *_, **__):
            after_step(times, memory, args)

    trainer.add_callback(Clock())
    collate = trainer.data_collator

    def counting_collator(features):  # count the real (non-pad) tokens of each batch
        batch = collate(features)
        tokens.append(int(batch["attention_mask"].sum()))
        return batch

    trainer.data_collator = counting_collator
    trainer.train()
    n_tokens = sum(tokens[-args.steps :][args.warmup :])  # after any precompute pass's batches
    optimizer = "rmsprop" if trainer.args.optim == "rmsprop" else "adamw"
    return throughput(n_tokens, times, memory, args, trainer.model, optimizer)


def trl_sft(args) -> dict:
    import tempfile

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    process_settings(args, ours=False)
    model, tokenizer, sft, _ = build(args, args.batch)
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

    process_settings(args, ours=False)
    pairs_per_step = args.batch // 2
    model, tokenizer, _, prefs = build(args, pairs_per_step)
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
        precompute_ref_batch_size=pairs_per_step,
        **({"optim": "rmsprop"} if args.dpo_optimizer == "rmsprop" else {}),
    )
    trainer = DPOTrainer(
        # trl patches model.forward in place: the reference, on the fly, gets its own copy
        model=model if precompute else copy.deepcopy(model),
        ref_model=None if precompute else model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    return run_trl(trainer, args)


def trl_dpo_model(args) -> dict:
    return trl_dpo(args, precompute=False)


MEASUREMENTS = {
    "ours_sft": ours_sft,
    "ours_sft_rows": ours_sft_rows,
    "trl_sft": trl_sft,
    "ours_dpo": ours_dpo,
    "ours_dpo_concat": ours_dpo_concat,
    "ours_dpo_rows": ours_dpo_rows,
    "trl_dpo": trl_dpo,
    "ours_dpo_model": ours_dpo_model,
    "ours_dpo_model_concat": ours_dpo_model_concat,
    "trl_dpo_model": trl_dpo_model,
}
ROWS = [  # (label, our measurement, trl's)
    ("SFT", "ours_sft", "trl_sft"),
    ("SFT, chat rows", "ours_sft_rows", "trl_sft"),
    ("DPO, precomputed ref, shared prefix", "ours_dpo", "trl_dpo"),
    ("DPO, precomputed ref, concatenated", "ours_dpo_concat", "trl_dpo"),
    ("DPO, precomputed ref, pair rows", "ours_dpo_rows", "trl_dpo"),
    ("DPO, ref model on the fly, shared", "ours_dpo_model", "trl_dpo_model"),
    ("DPO, ref model on the fly, concat.", "ours_dpo_model_concat", "trl_dpo_model"),
]


def child(name: str, args) -> None:
    import torch

    torch.set_num_threads(1)
    result = MEASUREMENTS[name](args)
    result["peak_rss_mb"] = max(rss_mb()[0], PROCESS_PEAK_MB[0])
    print("RESULT " + json.dumps(result))


def measure(name: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", name, *args.forwarded]
    env = {
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TQDM_DISABLE": "1",
        "PATH": "/usr/bin:/bin",
    }
    for key in (
        "PYTHONPATH",
        "MALLOC_ARENA_MAX",
        "MALLOC_MMAP_THRESHOLD_",
        "MALLOC_TRIM_THRESHOLD_",
    ):
        if key in os.environ:  # the package this process imports (a worktree's src/), malloc
            env[key] = os.environ[key]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(line[len("RESULT ") :])


SWITCHES = {  # the on/off options, passed on to each measurement's process
    "--gradient-checkpointing": "on for ours and for trl",
    "--trim": "malloc_trim(0) after each step",
    "--glibc-default": "ours: glibc's dynamic mmap threshold (not the engine's steady_allocator)",
    "--keep-denormals": "both: float32 denormals computed (the engine flushes them to zero)",
    "--plain-layers": "ours: transformers' MLP and RMSNorm forwards (not the lean layers)",
    "--grouped": "qwen2.5-0.5b: batches as the engine's schedule makes them (length-grouped)",
    "--repeat-batch": "every step the same lengths (memory check)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=["miniature", "qwen2.5-0.5b"], default="miniature")
    parser.add_argument("--layers", type=int, default=24, help="qwen2.5-0.5b: decoder layers")
    parser.add_argument("--steps", type=int, help="steps per measurement (20; qwen2.5-0.5b: 4)")
    parser.add_argument("--warmup", type=int, help="untimed first steps (3; qwen2.5-0.5b: 1)")
    parser.add_argument("--batch", type=int, default=8, help="SFT sequences per step (even)")
    parser.add_argument("--tokens", type=int, default=256, help="miniature: tokens per sequence")
    parser.add_argument(
        "--row-tokens",
        type=int,
        help="ours_dpo_rows: pair_rows_tokens (3 x --tokens; qwen2.5-0.5b: 256 + 2 x 1024)",
    )
    parser.add_argument(
        "--chat-row-tokens",
        type=int,
        help="ours_sft_rows: pack_rows_tokens (4 x --tokens; qwen2.5-0.5b: 256 + 1024)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs; best kept")
    parser.add_argument(
        "--prompt-fraction", type=float, default=0.5, help="miniature: share that is prompt"
    )
    for flag, text in SWITCHES.items():
        parser.add_argument(flag, action="store_true", help=text)
    parser.add_argument(
        "--dpo-optimizer",
        choices=["adamw", "rmsprop"],
        default="adamw",
        help="DPO steps' optimizer, both sides (paper.yaml's DPO: rmsprop; SFT: always AdamW)",
    )
    parser.add_argument("--only", help="comma-separated measurements (default: all)")
    parser.add_argument("--child", choices=sorted(MEASUREMENTS))
    args = parser.parse_args()
    real = args.shape != "miniature"
    args.steps = args.steps or (4 if real else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if real else 3)
    args.row_tokens = args.row_tokens or (MAX_PROMPT + 2 * MAX_ANSWER if real else 3 * args.tokens)
    args.chat_row_tokens = args.chat_row_tokens or (
        MAX_PROMPT + MAX_ANSWER if real else 4 * args.tokens
    )
    if args.batch < 2 or args.batch % 2:
        parser.error("--batch must be even: DPO steps take batch / 2 pairs")
    if args.steps <= args.warmup:
        parser.error("--steps must exceed --warmup")
    if args.child:
        return child(args.child, args)
    args.forwarded = [
        f"--shape={args.shape}",
        f"--layers={args.layers}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--batch={args.batch}",
        f"--tokens={args.tokens}",
        f"--prompt-fraction={args.prompt_fraction}",
        f"--row-tokens={args.row_tokens}",
        f"--chat-row-tokens={args.chat_row_tokens}",
        f"--dpo-optimizer={args.dpo_optimizer}",
        *(flag for flag in SWITCHES if getattr(args, flag[2:].replace("-", "_"))),
    ]
    names = args.only.split(",") if args.only else list(MEASUREMENTS)
    if unknown := set(names) - set(MEASUREMENTS):
        parser.error(f"--only: unknown {sorted(unknown)}")

    shape = (
        f"qwen2.5-0.5b shape, {args.layers} layers, random weights, UltraFeedback lengths"
        if real
        else f"miniature shape, ~{args.tokens} tokens per sequence ({args.prompt_fraction:.0%} "
        "prompt)"
    )
    print(
        f"{shape}; {args.steps} steps ({args.warmup} warm-up), SFT batch {args.batch} sequences, "
        f"DPO batch {args.batch // 2} pairs, float32, gradient checkpointing "
        f"{'on' if args.gradient_checkpointing else 'off'} (both), "
        + (
            "DPO RMSprop (ours: chunked single-tensor steps; trl: optim=rmsprop), SFT AdamW"
            if args.dpo_optimizer == "rmsprop"
            else "AdamW"
        )
        + " (ours: chunked single-tensor steps; trl: fused, its default), 1 thread"
        f"{', malloc_trim after each step' if args.trim else ''}"
        f", denormals {'kept' if args.keep_denormals else 'flushed to zero'} (both)"
        f"; ours: {'glibc default' if args.glibc_default else 'steady_allocator'}, "
        f"{'lean' if not (args.plain_layers or args.gradient_checkpointing) else 'plain'} layers"
        f"{', the same batch lengths every step' if args.repeat_batch else ''}"
        f"{', length-grouped batches' if args.grouped else ', unsorted batches' if real else ''}"
        f"; {TRL_SETTINGS}; "
        f"load average {os.getloadavg()[0]:.2f} at start",
        flush=True,
    )
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        for name in names:
            result = measure(name, args)
            runs[name].append(result)
            steps = " ".join(
                "/".join(f"{mb / 1024:.1f}" for mb in step) for step in result["rss_by_step_mb"]
            )
            print(
                f"[{repeat + 1}/{args.repeats}] {name:21s} {result['tokens_per_s']:8.0f} tok/s "
                f"{result['tokens_per_cpu_s']:8.0f} tok/CPU-s  "
                f"{result['cpu_s_per_step']:7.1f} CPU-s/step "
                f"{result['tokens_per_step']:6.0f} tok/step  "
                f"peak RSS {result['peak_rss_mb']:6.0f} MB  floor {result['floor_mb']:6.0f} MB; "
                "GB peak in forward+backward/in the optimizer step/resident after, each step: "
                f"{steps}",
                flush=True,
            )
    best = {
        name: {key: max(r[key] for r in rs) for key in ("tokens_per_s", "tokens_per_cpu_s")}
        | {"peak_rss_mb": min(r["peak_rss_mb"] for r in rs), "floor_mb": rs[0]["floor_mb"]}
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
    print(header + " | ours RSS/floor")
    for label, our_name, trl_name in ROWS:
        if our_name not in best:
            continue
        ours, trl = best[our_name], best.get(trl_name)
        line = f"{label:35s}"
        for metric, _, fmt in columns:
            line += f" | {fmt.format(ours[metric]):>{len(fmt.format(0)) + 5}s}"
            if trl is None:
                line += f" {'-':>{len(fmt.format(0))}s} {'-':>8s}"
            else:
                line += f" {fmt.format(trl[metric])} {ours[metric] / trl[metric]:8.2f}"
        print(line + f" | {ours['peak_rss_mb'] / ours['floor_mb']:14.2f}")
    if "ours_dpo" in best and "ours_sft" in best:
        ratio = best["ours_dpo"]["peak_rss_mb"] / best["ours_sft"]["peak_rss_mb"]
        print(f"our DPO (precomputed reference) peak RSS / our SFT peak RSS: {ratio:.2f}")


if __name__ == "__main__":
    main()
