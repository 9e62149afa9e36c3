"""What one decoder layer keeps for the backward pass, per token, at Qwen2.5-0.5B's shape: with
transformers' own layers and with the engine's lean ones (`prepare_model`), by module.

    .venv/bin/python benchmarks/saved_activations.py [--tokens 512] [--layers 2]

Counts the distinct storages autograd saves during one forward pass of a randomly initialised
Qwen2.5-0.5B-shaped decoder (parameters excluded), through `saved_tensors_hooks`: exact bytes,
no timing. Each saved tensor is charged to the innermost module running when it was saved (the
input of a projection to its `Linear`, for instance).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_train import QWEN25_05B  # noqa: E402


def saved_by_module(model, input_ids: torch.Tensor) -> dict[str, int]:
    """Bytes saved for backward during one forward pass of `model`'s decoder, by module type."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    running: list[str] = []
    kept: dict[int, tuple[str, int]] = {}

    def enter(module, _inputs):
        running.append(type(module).__name__)

    def leave(_module, _inputs, _output):
        running.pop()

    hooks = [m.register_forward_pre_hook(enter) for m in model.modules()]
    hooks += [m.register_forward_hook(leave) for m in model.modules()]

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr not in kept:
            kept[ptr] = (running[-1] if running else "-", t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.get_decoder()(input_ids=input_ids, use_cache=False)
    for h in hooks:
        h.remove()
    totals: dict[str, int] = defaultdict(int)
    for owner, nbytes in kept.values():
        totals[owner] += nbytes
    return dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from stylized_dpo.train.runtime import prepare_model

    config = Qwen2Config(
        vocab_size=1024,  # the head is not part of the decoder's activations
        num_hidden_layers=args.layers,
        tie_word_embeddings=True,
        **QWEN25_05B,
    )
    config._attn_implementation = "sdpa"
    input_ids = torch.randint(0, config.vocab_size, (1, args.tokens))
    results = {}
    for name in ("transformers", "lean"):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
        if name == "lean":
            prepare_model(model, gradient_checkpointing=False, compile=False)
        results[name] = saved_by_module(model, input_ids)
    per = args.tokens * args.layers * 4  # float32 values per token per layer
    owners = sorted(set(results["transformers"]) | set(results["lean"]))
    print(
        f"Qwen2.5-0.5B shape (hidden {config.hidden_size}, FFN {config.intermediate_size}), "
        f"{args.layers} layers, {args.tokens} tokens, float32: float32 values kept for backward "
        "per token per layer"
    )
    print(f"{'module':24s} {'transformers':>12s} {'lean':>8s}")
    for owner in owners:
        plain, lean = (results[k].get(owner, 0) / per for k in ("transformers", "lean"))
        print(f"{owner:24s} {plain:12.1f} {lean:8.1f}")
    plain, lean = (sum(results[k].values()) / per for k in ("transformers", "lean"))
    print(f"{'total':24s} {plain:12.1f} {lean:8.1f}   lean / transformers: {lean / plain:.3f}")
    print(
        f"per 1,000 tokens at 24 layers: {plain * 24_000 * 4 / 2**30:.2f} GB -> "
        f"{lean * 24_000 * 4 / 2**30:.2f} GB"
    )


if __name__ == "__main__":
    main()
