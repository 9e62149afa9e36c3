"""Tokens/s, MFU and peak GPU memory of our SFT and DPO steps on a Qwen2.5-0.5B-shaped model.

    PYTHONPATH=src python3 benchmarks/bench_gpu.py [--steps 10] [--compile] [--grad-checkpointing]
        [--variants eager,gc,compile] [--peak-tflops 989] [--time-budget-s 240] [--tiny]

The model has Qwen2.5-0.5B's architecture (hidden 896, 24 layers, 14 heads, 2 KV heads,
intermediate 4864, vocabulary 151,936, tied embeddings) with random weights, built in code: no
network, no hub. It trains as the engine does: fp32 master weights, bf16 autocast, SDPA
attention, the LM head and log-softmax in fp32 on the completion positions only. Sequences are
random token ids at the paper's lengths (prompt 256 + completion 1024 tokens, no padding) and
batch sizes (Table 1: SFT 8 sequences; Table 2: DPO 4 pairs, i.e. 8 sequences per forward).

Measured steps, each one optimizer step over one micro-batch with the engine's code:
  sft               completion NLL (the SFT loop's micro-step), AdamW as in Table 1
  dpo-pre           `dpo_forward` with reference log-probs precomputed before training, RMSprop
                    (Table 2), prefix sharing on (the default: [prompt, chosen, rejected] packed)
  dpo-pre-concat    the same with prefix sharing off (chosen and rejected sequences concatenated)
  dpo-model         `dpo_forward` with the frozen reference model in memory (a forward per step)
  dpo-model-concat  the same with prefix sharing off
  sft-rows          sft with two chats a row (`sft.pack_rows_tokens`: each its own attention)
  dpo-rows          dpo-pre with two pairs a row (`dpo.pair_rows_tokens`)

Tokens/s counts every (non-pad) token of the step's sequences; chosen and rejected both count,
and so does the prompt of each (prompt + chosen + prompt + rejected per pair, whether or not
prefix sharing computes the prompt once: DPO rows compare as pairs per second). MFU is model
FLOPs / peak over the tokens the model actually processes (with prefix sharing, prompt + chosen
+ rejected per pair): 6 N per token for the policy's forward and backward, plus 2 N for the
reference forward in dpo-model, with N all parameters (the tied embedding counted once, as the
LM head matrix); attention's own FLOPs are not counted. With prefix sharing the prompt + chosen
block runs SDPA's flash kernel; the rejected block, under a mask, the memory-efficient kernel.
The peak bf16 dense rate comes from
`--peak-tflops` or, by default, from the device name (H100 SXM and H200: 989 TFLOP/s). Peak
memory is `torch.cuda.max_memory_allocated` over the measurement (weights, gradients,
optimizer state and activations).

Variants: `eager` (default), `gc` (gradient checkpointing), `compile` (torch.compile of the
decoder), `compile+gc` -- the engine's `gradient_checkpointing` and `compile` options -- and
each with `+bf16head`: the chunked LM head's matmuls in bf16, its log-softmax and gradients
accumulated in fp32 (`logps.LM_HEAD_DTYPE`). The head is the engine's chunked one (never the
full [tokens x 151,936] logits), or Liger's fused kernel when `liger-kernel` is installed.
`--sdpa flash` (the default) allows only SDPA's flash and memory-efficient kernels.

One short device call measures everything; `--time-budget-s` skips what would start after
480 s, so the call ends within a 10-minute limit (not yet run on a GPU):

    PYTHONPATH=src python3 benchmarks/bench_gpu.py --steps 4 --warmup 2 --kinds sft,dpo-pre \
        --variants eager,bf16head,compile+bf16head,gc --time-budget-s 480
`--time-budget-s` skips whatever would start after that many seconds (compiles are slow).
`--tiny` runs a toy shape (on CPU when no GPU is visible) to check the script itself.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import sys
import time
import traceback

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

import stylized_dpo.train.logps as logps
from stylized_dpo.train.batching import batch_to, collate_preferences, collate_sft
from stylized_dpo.train.distributed import Dist
from stylized_dpo.train.dpo import DPOConfig, dpo_forward
from stylized_dpo.train.logps import pair_logps
from stylized_dpo.train.metrics import DPOBatchStats
from stylized_dpo.train.optim import adamw
from stylized_dpo.train.runtime import prepare_model
from stylized_dpo.train.sft import sft_token_grad
from stylized_dpo.train.tokens import TokenizedChat, TokenizedPair

QWEN25_05B = dict(
    hidden_size=896,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    intermediate_size=4864,
    vocab_size=151936,
)
TINY = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    vocab_size=1000,
)
PEAK_BF16_TFLOPS = {  # dense bf16 tensor-core peaks (vendor datasheets), by device-name substring
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.0,  # SXM (after the more specific H100 names above)
    "A100": 312.0,
}
VARIANTS = {
    "eager": (False, False),
    "gc": (True, False),
    "compile": (False, True),
    "compile+gc": (True, True),
    "bf16head": (False, False),
    "compile+bf16head": (False, True),
    "compile+gc+bf16head": (True, True),
}  # name -> (gradient_checkpointing, compile); "+bf16head": the LM head's matmuls in bf16
KINDS = (
    "sft",
    "dpo-pre",
    "dpo-pre-concat",
    "dpo-model",
    "dpo-model-concat",
    "sft-rows",
    "dpo-rows",
)


def build_model(arch: dict, device: str) -> Qwen2ForCausalLM:
    config = Qwen2Config(
        **arch,
        tie_word_embeddings=True,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        attention_dropout=0.0,
        use_cache=False,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the GPU: seconds instead of a minute on CPU
        model = Qwen2ForCausalLM(config)
    return model.float()


def random_sequences(n: int, prompt: int, completion: int, vocab: int, seed: int):
    rng = random.Random(seed)

    def ids(k: int) -> list[int]:
        return [rng.randrange(3, vocab) for _ in range(k)]

    return [(ids(prompt), ids(completion), ids(completion)) for _ in range(n)]


def sft_step(
    model, optimizer, chats: list[TokenizedChat], device: str, row_tokens: int | None
) -> int:
    """One step of the SFT loop (train_sft's micro-batch body, grad_accum 1)."""
    n_completion = sum(len(c.completion_ids) for c in chats)
    batch = batch_to(collate_sft(chats, 0, row_tokens), device)
    token_grad = sft_token_grad(Dist(), n_completion, 1.0)
    loss = -pair_logps(model, **batch, token_grad=token_grad).sum() / n_completion
    loss.backward()
    loss.item()  # the loop logs the loss of each micro-batch
    n_tokens = sum(len(c.input_ids) for c in chats)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return n_tokens


def dpo_step(policy, optimizer, pairs, ref_logps, ref_model, cfg: DPOConfig, device: str) -> int:
    """One step of the DPO loop (train_dpo's micro-batch body, grad_accum 1)."""
    stats = DPOBatchStats()
    *out, n_tokens = dpo_forward(policy, pairs, ref_logps, ref_model, cfg, 0, device)
    (out[0].sum() / len(pairs)).backward()
    stats.add(*out)
    torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0).item()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return n_tokens


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(kind: str, variant: str, args, device: str) -> dict:
    checkpointing, compile_ = VARIANTS[variant]
    # the chunked head's matmuls in bf16, its log-softmax and gradients accumulated in fp32
    logps.LM_HEAD_DTYPE = torch.bfloat16 if variant.endswith("bf16head") else torch.float32
    arch = TINY if args.tiny else QWEN25_05B
    steps = args.warmup + args.steps
    sft = kind.startswith("sft")
    n_seq = args.sft_batch if sft else args.dpo_pairs
    rows = kind.endswith("-rows")
    data = random_sequences(n_seq * steps, args.prompt, args.completion, arch["vocab_size"], 0)
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = build_model(arch, device)
    n_params = sum(p.numel() for p in model.parameters())
    ref_model, refs, cfg = None, [None] * steps, None
    if sft:
        batches = [
            [TokenizedChat(f"s{i}", p, c) for i, (p, c, _) in enumerate(data[s::steps])]
            for s in range(steps)
        ]
        optimizer = adamw(model, 2.2e-5, (0.9, 0.95), 0.01)  # Table 1
    else:
        batches = [
            [TokenizedPair(f"p{i}", p, c, r) for i, (p, c, r) in enumerate(data[s::steps])]
            for s in range(steps)
        ]
        sharing = not kind.endswith("-concat")
        reference = "model" if kind.startswith("dpo-model") else "precomputed"
        cfg = DPOConfig(
            beta=0.1,
            reference=reference,
            device=device,
            prefix_sharing=sharing,
            pair_rows_tokens=2 * (args.prompt + 2 * args.completion) if rows else None,
            lr=1e-5,
            weight_decay=0.01,
        )  # Table 2
        if reference == "model":  # a frozen copy of the starting weights, as train_dpo loads it
            ref_model = build_model(arch, device).eval().requires_grad_(False)
            ref_model.load_state_dict(model.state_dict())
            prepare_model(ref_model, gradient_checkpointing=False, compile=compile_)
        else:  # precomputed before training (the workflow's reference_logps rule)
            model.eval()
            with torch.no_grad():
                refs = [
                    tuple(
                        t.cpu()
                        for t in pair_logps(
                            model,
                            **batch_to(
                                collate_preferences(b, 0, sharing, cfg.pair_rows_tokens), device
                            ),
                        ).chunk(2)
                    )
                    for b in batches
                ]
        optimizer = cfg.make_optimizer(model)  # RMSprop, as train_dpo builds it
    prepare_model(model, checkpointing, compile_)
    model.train()

    times, n_tokens, model_tokens = [], 0, 0
    sync(device)
    start = time.perf_counter()
    for s, batch in enumerate(batches):
        if sft:
            row_tokens = 2 * (args.prompt + args.completion) if rows else None
            tokens = sft_step(model, optimizer, batch, device, row_tokens)
        else:
            tokens = dpo_step(model, optimizer, batch, refs[s], ref_model, cfg, device)
        sync(device)
        times.append(time.perf_counter())
        if s >= args.warmup:
            n_tokens += tokens
            model_tokens += processed_tokens(batch, cfg)
    elapsed = times[-1] - times[args.warmup - 1]
    tokens_per_s = n_tokens / elapsed
    flops_per_token = (8 if ref_model is not None else 6) * n_params
    result = {
        "tokens_per_s": tokens_per_s,
        "step_s": elapsed / args.steps,
        "first_step_s": times[0] - start,
        "tflops": flops_per_token * model_tokens / elapsed / 1e12,
        "params_m": n_params / 1e6,
    }
    if device.startswith("cuda"):
        sync(device)
        result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        result["reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    del model, ref_model, optimizer
    return result


def processed_tokens(batch, cfg: DPOConfig | None) -> int:
    """The tokens the model runs on (padding aside): SFT sequences; DPO pairs with the prompt
    once (prefix sharing) or twice (concatenated)."""
    if cfg is None:
        return sum(len(c.input_ids) for c in batch)
    prompts = 1 if cfg.prefix_sharing else 2
    return sum(prompts * len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in batch)


def sdpa_backends(choice: str, device: str):
    """`flash`: SDPA may use only the flash and memory-efficient kernels (the masked rejected
    block of prefix sharing needs the latter), never the math fallback: a kernel that cannot
    run fails loudly instead of running slowly. `any`: SDPA's own choice."""
    from contextlib import nullcontext

    if choice == "any" or not device.startswith("cuda"):
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION])


def peak_tflops(args, device: str) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (>= 1)")
    parser.add_argument("--prompt", type=int, default=256, help="prompt tokens per sequence")
    parser.add_argument("--completion", type=int, default=1024, help="completion tokens")
    parser.add_argument("--sft-batch", type=int, default=8, help="SFT sequences per step")
    parser.add_argument("--dpo-pairs", type=int, default=4, help="DPO pairs per step")
    parser.add_argument("--kinds", default="sft,dpo-pre,dpo-pre-concat,dpo-model")
    parser.add_argument("--variants", default=None, help=f"comma list of {sorted(VARIANTS)}")
    parser.add_argument("--compile", action="store_true", help="torch.compile the decoder")
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 dense peak")
    parser.add_argument("--time-budget-s", type=float, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--sdpa", choices=["flash", "any"], default="flash", help="SDPA kernels allowed (CUDA)"
    )
    parser.add_argument("--tiny", action="store_true", help="toy shape, to test the script")
    args = parser.parse_args()
    if args.warmup < 1:
        parser.error("--warmup must be >= 1")
    if args.variants is None:
        args.variants = {
            (False, False): "eager",
            (True, False): "gc",
            (False, True): "compile",
            (True, True): "compile+gc",
        }[(args.grad_checkpointing, args.compile)]
    variants = args.variants.split(",")
    kinds = args.kinds.split(",")
    for v in variants:
        if v not in VARIANTS:
            parser.error(f"unknown variant {v!r}; known: {sorted(VARIANTS)}")
    for k in kinds:
        if k not in KINDS:
            parser.error(f"unknown kind {k!r}")

    begin = time.perf_counter()
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.tiny:
        parser.error("the full shape needs a GPU (use --tiny to test on CPU)")
    peak = peak_tflops(args, device)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    import transformers

    print(
        f"device {name}; torch {torch.__version__}, transformers {transformers.__version__}, "
        f"python {sys.version.split()[0]}"
    )
    print(
        f"shape {'tiny' if args.tiny else 'Qwen2.5-0.5B'}; prompt {args.prompt} + completion "
        f"{args.completion} tokens; SFT batch {args.sft_batch}, DPO batch {args.dpo_pairs} pairs; "
        f"{args.warmup} warm-up + {args.steps} timed steps; SDPA ({args.sdpa}), bf16 autocast "
        f"on CUDA, chunked LM head (Liger's when installed: "
        f"{logps._liger_cross_entropy() is not None}); "
        f"peak {peak if peak else 'unknown'} TFLOP/s",
        flush=True,
    )
    print(
        f"{'variant':11s} {'step':16s} {'tok/s':>9s} {'s/step':>7s} {'1st s':>6s} "
        f"{'TFLOP/s':>8s} {'MFU':>6s} {'peak GiB':>9s} {'rsrv GiB':>9s}",
        flush=True,
    )
    n_params_m = float("nan")
    for variant in variants:
        for kind in kinds:
            spent = time.perf_counter() - begin
            if args.time_budget_s is not None and spent > args.time_budget_s:
                print(f"{variant:11s} {kind:16s} skipped: {spent:.0f} s > time budget", flush=True)
                continue
            try:
                with sdpa_backends(args.sdpa, device):
                    r = measure(kind, variant, args, device)
            except torch.OutOfMemoryError as e:
                print(f"{variant:11s} {kind:16s} out of memory: {str(e).splitlines()[0]}")
                continue
            except Exception as e:  # report and go on: one broken variant spoils no other
                traceback.print_exc()
                print(f"{variant:11s} {kind:16s} failed: {type(e).__name__}: {e}", flush=True)
                continue
            n_params_m = r["params_m"]
            mfu = f"{100 * r['tflops'] / peak:5.1f}%" if peak else "   n/a"
            mem = (
                f"{r['peak_gib']:9.2f} {r['reserved_gib']:9.2f}"
                if "peak_gib" in r
                else f"{'n/a':>9s} {'n/a':>9s}"
            )
            print(
                f"{variant:11s} {kind:16s} {r['tokens_per_s']:9.0f} {r['step_s']:7.3f} "
                f"{r['first_step_s']:6.1f} {r['tflops']:8.1f} {mfu} {mem}",
                flush=True,
            )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"N = {n_params_m:.1f} M parameters; host peak RSS {rss:.0f} MB; "
        f"total {time.perf_counter() - begin:.0f} s (pid {os.getpid()})"
    )


if __name__ == "__main__":
    main()
