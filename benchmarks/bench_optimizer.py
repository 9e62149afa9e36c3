"""CPU seconds of one optimizer step over Qwen2.5-0.5B's parameter shapes, one thread: our
chunked single-tensor steps (`ChunkedAdamW`, `ChunkedRMSprop`) against torch's own.

    .venv/bin/python benchmarks/bench_optimizer.py [--layers 2] [--steps 3]
        [--chunks 262144,4194304]

The parameters are those of the model `bench_train.py --shape qwen2.5-0.5b` builds (the tied
151,936 x 896 embedding, `--layers` decoder layers), random, with random gradients, float32;
denormals flushed to zero as in training. Each optimizer first takes one untimed step (its state
is created there), then `--steps` timed ones. The peers: torch's single-tensor step
(`foreach=False`: the same float results as ours, bit for bit, which the miniature's numbers
rest on) and its fused step (`fused=True`, trl's default AdamW: other rounding). The chunked
rows name their chunk size in elements.
"""

from __future__ import annotations

import argparse
import time

import torch

from stylized_dpo.train.optim import OPTIMIZER_CHUNK_ELEMENTS, ChunkedAdamW, ChunkedRMSprop

HIDDEN, FFN, KV, VOCAB = 896, 4864, 128, 151936


def parameters(layers: int) -> list[torch.nn.Parameter]:
    torch.manual_seed(0)
    shapes = [(VOCAB, HIDDEN)]
    for _ in range(layers):
        shapes += [(HIDDEN, HIDDEN), (HIDDEN,), (KV, HIDDEN), (KV,), (KV, HIDDEN), (KV,)]
        shapes += [(HIDDEN, HIDDEN), (FFN, HIDDEN), (FFN, HIDDEN), (HIDDEN, FFN)]
        shapes += [(HIDDEN,), (HIDDEN,)]
    params = [torch.nn.Parameter(torch.randn(s) * 0.02) for s in shapes + [(HIDDEN,)]]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    return params


def seconds_per_step(make, params, steps: int) -> float:
    optimizer = make(params)
    optimizer.step()
    start = time.process_time()
    for _ in range(steps):
        optimizer.step()
    seconds = (time.process_time() - start) / steps
    del optimizer
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--chunks", default=f"{OPTIMIZER_CHUNK_ELEMENTS},{1 << 22}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    params = parameters(args.layers)
    n = sum(p.numel() for p in params)
    print(f"{n / 1e6:.1f} M parameters (embedding + {args.layers} layers), 1 thread, float32")
    adamw = dict(lr=1e-5, betas=(0.9, 0.95), weight_decay=0.01)
    rmsprop = dict(lr=1e-5, weight_decay=0.01)
    for name, ours, torch_optimizer, kwargs in (
        ("AdamW", ChunkedAdamW, torch.optim.AdamW, adamw),
        ("RMSprop", ChunkedRMSprop, torch.optim.RMSprop, rmsprop),
    ):
        single = seconds_per_step(
            lambda ps, c=torch_optimizer, k=kwargs: c(ps, foreach=False, **k), params, args.steps
        )
        rows = [("torch single-tensor (foreach=False)", single)]
        if name == "AdamW":
            fused = seconds_per_step(
                lambda ps: torch.optim.AdamW(ps, fused=True, **adamw), params, args.steps
            )
            rows.append(("torch fused (fused=True)", fused))
        for chunk in map(int, args.chunks.split(",")):

            def make(ps, chunk=chunk, c=ours, k=kwargs):
                optimizer = c(ps, **k)
                optimizer.chunk_elements = chunk
                return optimizer

            rows.append((f"ours, chunks of {chunk:,}", seconds_per_step(make, params, args.steps)))
        print(f"\n{name:8s} {'CPU-s/step':>11s} {'vs single-tensor':>17s}")
        for label, seconds in rows:
            print(f"  {label:36s} {seconds:8.3f} {single / seconds:10.2f}x")


if __name__ == "__main__":
    main()
