"""HELM serving throughput: our batched client against HELM's stock HuggingFaceClient.

The same helm-run (the miniature's world data, `data_augmentation=canonical`, the chosen
scenarios) on the same random model, three ways:
- `stock`: HELM's own `HuggingFaceClient`, one request at a time (`--num-threads 1`);
- `ours`: `LogprobHuggingFaceClient` unbatched (`batch_size: 1`, one thread);
- `ours_batched`: `LogprobHuggingFaceClient` with `batch_size: B` and `B` HELM threads.
It prints requests per second of serving (the time HELM's executor spends on requests, from
helm-run's log) and of the whole helm-run, each arm's ratio to `stock`, and the largest
helm-run's resident memory so far (the arms run one after another). Every arm prompts
the model without its chat template (HELM's client would apply it only on one side).

    python benchmarks/bench_helm.py                              # the miniature's model
    python benchmarks/bench_helm.py --shape qwen2.5-0.5b --layers 2  # Qwen2.5-0.5B's widths
    python benchmarks/bench_helm.py --shape qwen2.5-0.5b --layers 24 --device cuda --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STOCK = "helm.clients.huggingface_client.HuggingFaceClient"
SHAPES = {
    "tiny": {"hidden_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
             "intermediate_size": 512},
    "qwen2.5-0.5b": {"hidden_size": 896, "num_attention_heads": 14, "num_key_value_heads": 2,
                     "intermediate_size": 4864},
}  # fmt: skip
QWEN_VOCAB = 151_936


def build_model(path: Path, shape: str, layers: int) -> int:
    """A random Qwen2 model of `shape` with the miniature's tokenizer; returns its parameters."""
    import torch
    from transformers import Qwen2ForCausalLM

    from stylized_dpo.model import tiny_qwen2_config, train_tokenizer
    from stylized_dpo.world.build import corpus_rows
    from stylized_dpo.world.facts import make_world

    corpus = [r["text"] for r in corpus_rows(make_world(200, 0), 4000, random.Random(0))]
    tokenizer = train_tokenizer(corpus, vocab_size=2048, model_max_length=2048)
    config = tiny_qwen2_config(tokenizer, num_hidden_layers=layers, **SHAPES[shape])
    if shape != "tiny":
        config.vocab_size = QWEN_VOCAB  # Qwen's LM head: the tokenizer uses the first 2,048 ids
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def serving_seconds(log: Path) -> float:
    """Seconds of HELM's `Executor.execute` blocks: serving requests (and the model's load)."""
    total, open_blocks = 0.0, []
    depth_re = re.compile(r"^\S+ \S+ INFO(\s*)(.*)$")
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        m = depth_re.match(line)
        if not m:
            continue
        indent, text = len(m.group(1)), m.group(2)
        if text == "Executor.execute {":
            open_blocks.append(indent)
        elif text.startswith("} [") and open_blocks and indent == open_blocks[-1]:
            open_blocks.pop()
            total += float(text[3:].split("s]")[0])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--instances", type=int, default=20, help="eval instances per run")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--scenarios", default="mmlu,boolq,natural_qa,hellaswag")
    parser.add_argument("--max-output-tokens", type=int, default=8)
    parser.add_argument("--arms", default="stock,ours,ours_batched")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args()

    import stylized_dpo.evals.helm as helm
    import stylized_dpo.evals.helm_run as helm_run
    from stylized_dpo.world.facts import make_world
    from stylized_dpo.world.helm_data import write_helm_scenarios

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    scenarios = tuple(args.scenarios.split(","))
    with tempfile.TemporaryDirectory(prefix="bench_helm_") as tmp:
        tmp = Path(tmp)
        write_helm_scenarios(
            make_world(2 * args.instances + 40, 0), tmp / "data", args.instances, 0
        )
        n_params = build_model(tmp / "model", args.shape, args.layers)
        print(f"model: {args.shape}, {args.layers} layers, {n_params / 1e6:.1f} M parameters; "
              f"{args.instances} instances per run of {', '.join(scenarios)}; canonical "
              f"augmentation; torch threads {os.environ['OMP_NUM_THREADS']}")  # fmt: skip
        arms = {
            "stock": (STOCK, 1),
            "ours": (helm_run.CLIENT_CLASS, 1),
            "ours_batched": (helm_run.CLIENT_CLASS, args.batch_size),
        }
        results = {}
        for arm in args.arms.split(","):
            client, batch = arms[arm]
            helm_run.CLIENT_CLASS = client  # read when the deployment is written
            config = helm.HelmConfig(
                executable_dir=str(ROOT / ".venv-helm" / "bin"),
                scenarios=scenarios,
                max_eval_instances=args.instances,
                max_output_tokens={s: args.max_output_tokens for s in ("natural_qa", "quac")},
                plain_prompt_models=("bench",),
                num_threads=batch,
                batch_size=batch,
                device=args.device,
            )
            record = helm_run.run_model("bench", tmp / "model", tmp / "data", tmp / arm, config)
            serving = serving_seconds(tmp / arm / "helm-run.log")
            # ru_maxrss of children is the largest helm-run so far (KiB on Linux).
            rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            results[arm] = {
                "requests": record["requests"],
                "serving_s": round(serving, 2),
                "wall_s": record["seconds"],
                "requests_per_s": record["requests"] / serving,
                "requests_per_wall_s": record["requests"] / record["seconds"],
                "batch_size": batch,
                "peak_rss_mb_so_far": round(rss_mb),
            }
    base = results.get("stock")
    print(f"{'arm':<14}{'batch':>6}{'requests':>10}{'serving s':>11}{'req/s':>9}"
          f"{'wall s':>9}{'req/wall-s':>12}{'x stock':>9}{'max RSS MB':>12}")  # fmt: skip
    for arm, r in results.items():
        ratio = r["requests_per_s"] / base["requests_per_s"] if base else float("nan")
        print(f"{arm:<14}{r['batch_size']:>6}{r['requests']:>10}{r['serving_s']:>11.1f}"
              f"{r['requests_per_s']:>9.2f}{r['wall_s']:>9.1f}{r['requests_per_wall_s']:>12.2f}"
              f"{ratio:>9.2f}{r['peak_rss_mb_so_far']:>12}")  # fmt: skip
    print(json.dumps(results))


if __name__ == "__main__":
    main()
