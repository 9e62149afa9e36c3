"""Generation: determinism, resumability, left-padded batching, stop handling, vLLM requests."""

import sys
import types
from pathlib import Path

import pytest
import torch
from eval_helpers import save_tiny_chat_model

from stylized_dpo.evals.generate import (
    SamplingConfig,
    TransformersGenerator,
    generate_answers,
    split_at_stop,
    vllm_requests,
)
from stylized_dpo.io import read_records, write_jsonl
from stylized_dpo.model import load_tokenizer
from stylized_dpo.records import EvalPrompt, Generation

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("gen")
    model = save_tiny_chat_model(root / "model")
    prompts = [
        EvalPrompt(
            f"p{i}",
            f"What is the {'main export' if i % 2 else 'capital'} of "
            f"{'Aland' if i % 3 else 'Brova'}? ({i})",
        )
        for i in range(10)
    ]
    write_jsonl(root / "prompts.jsonl", prompts)
    return model, root / "prompts.jsonl"


CFG = SamplingConfig(max_new_tokens=6, batch_size=4, seed=0)


def test_rows_and_determinism(setup: tuple[Path, Path], tmp_path: Path) -> None:
    model, prompts = setup
    generate_answers(model, prompts, tmp_path / "a.jsonl", "tiny", CFG)
    generate_answers(model, prompts, tmp_path / "b.jsonl", "tiny", CFG)
    a = read_records(tmp_path / "a.jsonl", Generation)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert [g.prompt_id for g in a] == [f"p{i}" for i in range(10)]
    assert a[0].sampling == {
        "backend": "transformers",
        "max_new_tokens": 6,
        "temperature": 0.6,
        "top_p": 0.95,
        "top_k": 20,
        "batch_size": 4,
        "seed": 0,
        "device": "cpu",
        "dtype": "float32",
    }
    assert not (tmp_path / "a.jsonl.partial").exists()
    other = SamplingConfig(max_new_tokens=6, batch_size=4, seed=1)
    generate_answers(model, prompts, tmp_path / "c.jsonl", "tiny", other)
    c = read_records(tmp_path / "c.jsonl", Generation)
    assert [g.response for g in c] != [g.response for g in a]


def test_resume_after_a_crash_reproduces_the_uninterrupted_run(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    model, prompts = setup
    generate_answers(model, prompts, tmp_path / "full.jsonl", "tiny", CFG)

    real = TransformersGenerator(model, CFG)
    calls: list[list[str]] = []

    def crashing(batch: list[EvalPrompt], seed: int) -> list[tuple[str, str]]:
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        calls.append([p.prompt_id for p in batch])
        return real(batch, seed)

    out = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError, match="simulated crash"):
        generate_answers(model, prompts, out, "tiny", CFG, generator=crashing)
    partial = out.with_name("out.jsonl.partial")
    assert not out.exists() and len(partial.read_text().splitlines()) == 8
    with open(partial, "a") as f:
        f.write('{"prompt_id": "p8", "prompt": "torn')  # a torn line from a crash mid-write

    calls.clear()

    def counting(batch: list[EvalPrompt], seed: int) -> list[tuple[str, str]]:
        calls.append([p.prompt_id for p in batch])
        return real(batch, seed)

    counts = generate_answers(model, prompts, out, "tiny", CFG, generator=counting)
    assert calls == [["p8", "p9"]]  # only the missing batch
    assert counts["kept_from_partial"] == 8 and counts["generated"] == 2
    assert out.read_bytes() == (tmp_path / "full.jsonl").read_bytes()
    assert not partial.exists()


def test_partial_with_other_settings_is_discarded(setup: tuple[Path, Path], tmp_path: Path) -> None:
    model, prompts = setup
    out = tmp_path / "out.jsonl"
    stale = Generation("p0", "q", "stale answer", "tiny", {"seed": 99})
    write_jsonl(out.with_name("out.jsonl.partial"), [stale])
    counts = generate_answers(model, prompts, out, "tiny", CFG)
    assert counts["kept_from_partial"] == 0
    assert "stale answer" not in out.read_text()


def test_left_padded_batches_equal_single_prompts(setup: tuple[Path, Path], tmp_path: Path) -> None:
    model, prompts = setup
    greedy = dict(max_new_tokens=8, temperature=0.0, seed=0)
    generate_answers(
        model, prompts, tmp_path / "b4.jsonl", "tiny", SamplingConfig(batch_size=4, **greedy)
    )
    generate_answers(
        model, prompts, tmp_path / "b1.jsonl", "tiny", SamplingConfig(batch_size=1, **greedy)
    )
    b4 = read_records(tmp_path / "b4.jsonl", Generation)
    b1 = read_records(tmp_path / "b1.jsonl", Generation)
    assert [g.response for g in b4] == [g.response for g in b1]


def test_split_at_stop() -> None:
    assert split_at_stop([5, 6, 2, 7, 0], [2, 0]) == ([5, 6], "stop")
    assert split_at_stop([5, 6, 7], [2, 0]) == ([5, 6, 7], "length")
    assert split_at_stop([0, 0], [2, 0]) == ([], "stop")


def test_stop_at_im_end(setup: tuple[Path, Path]) -> None:
    """A model forced to say one word and then <|im_end|> stops there: answer = that word."""
    model_dir, prompts = setup
    gen = TransformersGenerator(model_dir, SamplingConfig(max_new_tokens=5))
    tok = gen.tokenizer
    word = tok.encode("Borth", add_special_tokens=False)[0]
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    steps = []

    def force(module: object, inputs: object, logits: torch.Tensor) -> torch.Tensor:
        steps.append(1)
        out = logits.clone()
        out[..., word if len(steps) == 1 else im_end] += 1e4
        return out

    handle = gen.model.lm_head.register_forward_hook(force)
    try:
        answers = gen(read_records(prompts, EvalPrompt)[:3], seed=0)
    finally:
        handle.remove()
    assert answers == [(tok.decode([word]), "stop")] * 3
    assert len(steps) == 2  # prefill + one step: generation ended at the stop token


def test_vllm_requests_and_generator_with_a_fake_vllm(
    setup: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, prompts_path = setup
    tok = load_tokenizer(model)
    prompts = read_records(prompts_path, EvalPrompt)
    config = SamplingConfig(backend="vllm", max_new_tokens=512, seed=7, vllm_tensor_parallel_size=2)
    requests = vllm_requests(tok, prompts[:2], config)
    text, params = requests[0]
    assert text.endswith(
        "<|im_start|>user\n" + prompts[0].prompt + "<|im_end|>\n<|im_start|>assistant\n"
    )
    ids = tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert params == {
        "n": 1,
        "max_tokens": 512,
        "temperature": 0.6,
        "top_p": 0.95,
        "top_k": 20,
        "seed": params["seed"],
        "stop_token_ids": ids,
        "skip_special_tokens": True,
    }
    assert requests[1][1]["seed"] != params["seed"]  # one seed per request
    assert vllm_requests(tok, prompts[:1], config)[0][1]["seed"] == params["seed"]  # stable
    assert config.record().get("batch_size") is None  # batching does not change vLLM answers

    seen: dict[str, object] = {}

    class FakeLLM:
        def __init__(self, **kwargs: object) -> None:
            seen["llm"] = kwargs

        def get_tokenizer(self) -> object:
            return tok

        def generate(self, texts: list[str], params: list[dict], use_tqdm: bool) -> list:
            seen["texts"], seen["params"] = texts, params
            reasons = ["stop", "length"]
            return [
                types.SimpleNamespace(
                    outputs=[
                        types.SimpleNamespace(text=f"answer {i}", finish_reason=reasons[i % 2])
                    ]
                )
                for i in range(len(texts))
            ]

    fake = types.SimpleNamespace(LLM=FakeLLM, SamplingParams=lambda **kw: kw)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    from stylized_dpo.evals.generate import VllmGenerator

    gen = VllmGenerator(model, config)
    assert gen(prompts[:2], seed=0) == [("answer 0", "stop"), ("answer 1", "length")]
    assert seen["llm"] == {
        "model": str(model),
        "dtype": "float32",
        "seed": 7,
        "gpu_memory_utilization": 0.85,
        "tensor_parallel_size": 2,  # the job's GPUs (compute.gpus)
    }
    assert "vllm_tensor_parallel_size" not in config.record()  # engine setting, not sampling
    assert seen["params"] == [kw for _, kw in requests]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_generation_batches_like_single_prompts_and_is_seeded(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    model, prompts = setup
    greedy = dict(max_new_tokens=8, temperature=0.0, device="cuda")
    for name, size in (("b4", 4), ("b1", 1)):
        generate_answers(
            model,
            prompts,
            tmp_path / f"{name}.jsonl",
            "tiny",
            SamplingConfig(batch_size=size, **greedy),
        )
    b4 = read_records(tmp_path / "b4.jsonl", Generation)
    b1 = read_records(tmp_path / "b1.jsonl", Generation)
    assert [g.response for g in b4] == [g.response for g in b1]
    sampled = SamplingConfig(max_new_tokens=8, batch_size=4, device="cuda", dtype="bfloat16")
    generate_answers(model, prompts, tmp_path / "s1.jsonl", "tiny", sampled)
    generate_answers(model, prompts, tmp_path / "s2.jsonl", "tiny", sampled)
    assert (tmp_path / "s1.jsonl").read_bytes() == (tmp_path / "s2.jsonl").read_bytes()
