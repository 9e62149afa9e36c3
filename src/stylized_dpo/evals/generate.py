"""Every model answers the evaluation prompts, with the paper's sampling (section 5.1.1:
temperature 0.6, top_p 0.95, top_k 20, at most 512 new tokens).

Each prompt is a single user turn rendered with the model's chat template and
`add_generation_prompt=True`; an answer ends at `<|im_end|>` (or `<|endoftext|>`, which a base
model may emit instead), reported as finish_reason `stop`, or at `max_new_tokens` (`length`).

Backends:
- `transformers`: batched `generate` with the KV cache and left padding (CPU by default).
  Prompts are cut into fixed batches of `batch_size` in file order, and batch i is sampled under
  its own seed (derived from `seed` and its first prompt id), so a resumed run reproduces an
  uninterrupted one exactly: a batch is either all written or regenerated whole.
- `vllm`: imported only when chosen (it lives in its own environment). Each request carries its
  own seed (derived from `seed` and the prompt id), so answers do not depend on batching.

Resumable: rows are appended to `<output>.partial` (flushed and fsynced) batch by batch; a rerun
keeps the rows it finds there (dropping a torn last line) when their sampling settings match,
and the finished file is renamed into place atomically, in prompt order, without duplicates.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from tqdm import tqdm

from stylized_dpo.config import Section
from stylized_dpo.hashing import derive_seed
from stylized_dpo.io import DataError, read_records, write_jsonl
from stylized_dpo.records import EvalPrompt, Generation, PreferencePair, RecordError


@dataclass(frozen=True)
class SamplingConfig(Section):
    """Config key `generation` (plus the global `seed`)."""

    section: ClassVar[str] = "generation"

    backend: str = "transformers"
    """`transformers` or `vllm`."""
    max_new_tokens: int = 512
    temperature: float = 0.6
    """0 means greedy decoding."""
    top_p: float = 0.95
    top_k: int = 20
    batch_size: int = 16
    """Prompts per `generate` call (transformers) or per resumable chunk (vllm)."""
    seed: int = 0
    device: str = "cpu"
    """`cpu`, `cuda` or `auto` (transformers backend)."""
    dtype: str = "float32"
    """`float32`, `bfloat16` or `float16`."""
    vllm_gpu_memory_utilization: float = 0.85
    """Share of GPU memory vLLM may take (vllm backend)."""
    vllm_tensor_parallel_size: int = 1
    """GPUs the model is sharded over (vllm backend): the job's gpu resource (compute.gpus)."""

    def __post_init__(self) -> None:
        if self.backend not in ("transformers", "vllm"):
            raise ValueError(f"unknown generation backend '{self.backend}' (transformers | vllm)")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be >= 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError("need temperature >= 0, 0 < top_p <= 1, top_k >= 0")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"unknown dtype '{self.dtype}'")

    def record(self) -> dict[str, Any]:
        """The settings stored with every row (all that can change an answer)."""
        engine = ("vllm_gpu_memory_utilization", "vllm_tensor_parallel_size")
        out = {k: v for k, v in asdict(self).items() if k not in engine}
        if self.backend == "vllm":
            out.pop("batch_size")  # per-request seeds: batching does not change answers
        return out


def chat_text(tokenizer: Any, prompt: str) -> str:
    """The prompt as one user turn in the model's chat template, ready for the answer."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the model's tokenizer has no chat template")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Ids that end an answer: `<|im_end|>` (required) and `<|endoftext|>` when present."""
    from stylized_dpo.model import ENDOFTEXT, IM_END  # here: model imports torch, prompts need none

    vocab = tokenizer.get_vocab()
    if IM_END not in vocab:
        raise ValueError(f"the tokenizer has no {IM_END} token (not a ChatML model)")
    return [vocab[IM_END]] + ([vocab[ENDOFTEXT]] if ENDOFTEXT in vocab else [])


def split_at_stop(ids: Sequence[int], stop_ids: Sequence[int]) -> tuple[list[int], str]:
    """The answer's tokens before the first stop token, and `stop` or `length`."""
    stops = set(stop_ids)
    for i, token in enumerate(ids):
        if token in stops:
            return list(ids[:i]), "stop"
    return list(ids), "length"


Generator = Callable[[list[EvalPrompt], int], list[tuple[str, str]]]
"""(batch of prompts, batch seed) -> [(answer text, finish reason)] in batch order."""


class TransformersGenerator:
    """Batched sampling with `model.generate` (KV cache, left padding)."""

    def __init__(self, model_dir: str | os.PathLike[str], config: SamplingConfig):
        import torch
        from transformers import GenerationConfig

        from stylized_dpo.model import load_model, load_tokenizer, resolve_device

        self.torch = torch
        self.device = resolve_device(config.device)
        self.model = load_model(model_dir, dtype=getattr(torch, config.dtype), device=self.device)
        self.model.eval()
        self.tokenizer = load_tokenizer(model_dir)
        self.tokenizer.padding_side = "left"
        self.stop_ids = stop_token_ids(self.tokenizer)
        sample = config.temperature > 0
        # A fresh config: exactly the paper's sampling, nothing inherited from the checkpoint's
        # generation_config (e.g. an instruct model's repetition penalty).
        self.generation_config = GenerationConfig(
            max_new_tokens=config.max_new_tokens,
            do_sample=sample,
            temperature=config.temperature if sample else None,
            top_p=config.top_p if sample else None,
            top_k=config.top_k if sample else None,
            eos_token_id=self.stop_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            use_cache=True,
        )

    def __call__(self, batch: list[EvalPrompt], seed: int) -> list[tuple[str, str]]:
        return self.complete([chat_text(self.tokenizer, p.prompt) for p in batch], seed)

    def complete(self, texts: list[str], seed: int) -> list[tuple[str, str]]:
        """Continue already-templated texts (one batch): [(answer text, finish reason)]."""
        torch = self.torch
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(**enc, generation_config=self.generation_config)
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        results = []
        for row in new:
            ids, reason = split_at_stop(row, self.stop_ids)
            results.append((self.tokenizer.decode(ids, skip_special_tokens=True), reason))
        return results


def vllm_requests(
    tokenizer: Any, batch: list[EvalPrompt], config: SamplingConfig
) -> list[tuple[str, dict[str, Any]]]:
    """(prompt text, SamplingParams keyword arguments) per prompt, one seed per request."""
    stop_ids = stop_token_ids(tokenizer)
    requests = []
    for p in batch:
        params = {
            "n": 1,
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "top_k": config.top_k if config.top_k > 0 else -1,  # vLLM: -1 disables top-k
            "seed": derive_seed(config.seed, "request", p.prompt_id),
            "stop_token_ids": stop_ids,
            "skip_special_tokens": True,
        }
        requests.append((chat_text(tokenizer, p.prompt), params))
    return requests


class VllmGenerator:
    """vLLM offline inference (`LLM.generate`) with per-request seeds."""

    def __init__(self, model_dir: str | os.PathLike[str], config: SamplingConfig):
        import vllm  # lazy: vLLM lives in its own environment (envs/vllm.yaml)

        self.vllm = vllm
        self.config = config
        self.llm = vllm.LLM(
            model=str(model_dir),
            dtype=config.dtype,
            seed=config.seed,
            gpu_memory_utilization=config.vllm_gpu_memory_utilization,
            tensor_parallel_size=config.vllm_tensor_parallel_size,
        )
        self.tokenizer = self.llm.get_tokenizer()

    def __call__(self, batch: list[EvalPrompt], seed: int) -> list[tuple[str, str]]:
        requests = vllm_requests(self.tokenizer, batch, self.config)
        params = [self.vllm.SamplingParams(**kw) for _, kw in requests]
        outputs = self.llm.generate([text for text, _ in requests], params, use_tqdm=False)
        results = []
        for p, out in zip(batch, outputs, strict=True):
            completion = out.outputs[0]
            if completion.finish_reason not in ("stop", "length"):
                raise RuntimeError(
                    f"vLLM finished prompt {p.prompt_id} with '{completion.finish_reason}'"
                )
            results.append((completion.text, completion.finish_reason))
        return results


GENERATORS: dict[str, Callable[[str | os.PathLike[str], SamplingConfig], Generator]] = {
    "transformers": TransformersGenerator,
    "vllm": VllmGenerator,
}
"""Config `generation.backend` -> its generator, built with (model directory, config)."""


def make_generator(model_dir: str | os.PathLike[str], config: SamplingConfig) -> Generator:
    return GENERATORS[config.backend](model_dir, config)


def _read_partial(path: Path, sampling: dict[str, Any], model: str) -> dict[str, Generation]:
    """Rows of an interrupted run that can be kept (same model and sampling)."""
    if not path.exists():
        return {}
    done: dict[str, Generation] = {}
    lines = path.read_bytes().split(b"\n")
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            g = Generation.from_dict(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError, RecordError) as e:
            if lineno >= len(lines) - 1:  # a torn last line from a crash mid-write
                print(f"{path}: dropping a torn last line ({e})")
                break
            raise DataError(path, lineno, None, f"unreadable partial row: {e}") from e
        if g.sampling != sampling or g.model != model:
            print(f"{path}: sampling settings changed since the partial run; starting over")
            return {}
        done[g.prompt_id] = g
    return done


def prepare_eval_prompts(
    source: str, n: int, in_path: str | os.PathLike[str], out_path: str | os.PathLike[str]
) -> int:
    """The evaluation prompts every model answers: the first `n` of a source, in file order.

    `world`: the tiny world's `EvalPrompt` rows (with ground truth in `metadata`).
    `prefs_test`: the prompts of the prepared UltraFeedback test split (`PreferencePair` rows;
    the paper evaluates on 200 of them), without a reference answer.
    """
    if source == "world":
        prompts = read_records(in_path, EvalPrompt)
    elif source == "prefs_test":
        prompts = [
            EvalPrompt(prompt_id=p.prompt_id, prompt=p.prompt, metadata={"source": "prefs_test"})
            for p in read_records(in_path, PreferencePair)
        ]
    else:
        raise ValueError(f"unknown eval prompt source '{source}' (world | prefs_test)")
    unique: dict[str, EvalPrompt] = {}
    for p in prompts:
        unique.setdefault(p.prompt_id, p)
    chosen = list(unique.values())[:n]
    if len(chosen) < n:
        print(f"only {len(chosen)} distinct prompts in {in_path} (asked for {n})")
    return write_jsonl(out_path, chosen)


def generate_answers(
    model_dir: str | os.PathLike[str],
    prompts_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    model_name: str,
    config: SamplingConfig,
    generator: Generator | None = None,
) -> dict[str, int]:
    """Answer every eval prompt; write `Generation` rows to `out_path`. Returns counts."""
    prompts = read_records(prompts_path, EvalPrompt)
    seen: set[str] = set()
    for line, p in enumerate(prompts, start=1):
        if p.prompt_id in seen:
            raise DataError(prompts_path, line, "prompt_id", f"duplicate prompt_id {p.prompt_id}")
        seen.add(p.prompt_id)
    out = Path(out_path)
    partial = out.with_name(out.name + ".partial")
    sampling = config.record()
    done = _read_partial(partial, sampling, model_name)
    kept = len(done)
    partial.parent.mkdir(parents=True, exist_ok=True)
    if not done:
        partial.write_text("", encoding="utf-8")
    else:  # rewrite without a torn line, so appends start on a clean line
        write_jsonl(partial, [done[p.prompt_id] for p in prompts if p.prompt_id in done])

    size = config.batch_size
    batches = [prompts[i : i + size] for i in range(0, len(prompts), size)]
    todo = [b for b in batches if any(p.prompt_id not in done for p in b)]
    if todo and generator is None:
        generator = make_generator(model_dir, config)
    n_length = 0
    with open(partial, "a", encoding="utf-8") as f:
        for batch in tqdm(todo, desc=f"generate {model_name}", mininterval=1.0):
            seed = derive_seed(config.seed, "batch", batch[0].prompt_id)
            answers = generator(batch, seed)  # type: ignore[misc]
            if len(answers) != len(batch):
                raise RuntimeError(
                    f"the generator returned {len(answers)} answers for {len(batch)} prompts"
                )
            for p, (text, reason) in zip(batch, answers, strict=True):
                if p.prompt_id in done:
                    continue  # regenerated only to reproduce the batch's random stream
                g = Generation(
                    prompt_id=p.prompt_id,
                    prompt=p.prompt,
                    response=text,
                    model=model_name,
                    sampling=sampling,
                    finish_reason=reason,
                )
                f.write(json.dumps(g.to_dict(), ensure_ascii=False) + "\n")
                done[p.prompt_id] = g
            f.flush()
            os.fsync(f.fileno())
    rows = [done[p.prompt_id] for p in prompts]
    n_length = sum(g.finish_reason == "length" for g in rows)
    write_jsonl(out, rows)
    partial.unlink()
    counts = {
        "prompts": len(prompts),
        "kept_from_partial": kept,
        "generated": len(prompts) - kept,
        "finish_length": n_length,
    }
    print(json.dumps(counts))
    return counts
