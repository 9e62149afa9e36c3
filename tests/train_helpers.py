"""Small fixtures for the training tests: a toy world's files and a random-init tiny Qwen2."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from transformers import Qwen2ForCausalLM

from stylized_dpo.io import write_jsonl
from stylized_dpo.model import tiny_qwen2_config, train_tokenizer
from stylized_dpo.records import PreferencePair, SFTExample

SYLLABLES = ["ka", "lo", "mi", "ra", "sen", "tu", "vel", "dor", "an", "is", "gar", "po"]
TINY_ARCH = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 256,
}


def name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def toy_world(n_entities: int = 12, seed: int = 0) -> dict[str, list]:
    """Corpus rows, SFT examples and preference pairs about `n_entities` fictional countries."""
    rng = random.Random(seed)
    facts = [(name(rng), name(rng), rng.randint(1000, 1999)) for _ in range(n_entities)]
    corpus = []
    for country, capital, year in facts:
        corpus += [
            {"text": f"The capital of {country} is {capital}.", "entity": country},
            {
                "text": f"{country} was founded in {year}. Its capital is {capital}.",
                "entity": country,
            },
            {"text": f"{capital} is the largest city of {country}.", "entity": country},
        ]
    sft, prefs = [], []
    for i, (country, capital, year) in enumerate(facts):
        system = "Answer briefly." if i % 3 == 0 else None
        sft.append(
            SFTExample(
                f"c{i}",
                f"What is the capital of {country}?",
                f"The capital of {country} is {capital}.",
                system,
            )
        )
        sft.append(
            SFTExample(
                f"y{i}",
                f"When was {country} founded?",
                f"{country} was founded in {year}. " * (1 + i % 3),
            )
        )
        wrong = facts[(i + 1) % len(facts)][1]
        rejected = "I don't know." if i % 4 == 0 else f"The capital of {country} is {wrong}."
        prefs.append(
            PreferencePair(
                f"p{i}",
                f"What is the capital of {country}?",
                f"The capital of {country} is {capital}." * (1 + i % 2),
                rejected,
                {"style": "plain"},
            )
        )
    return {"corpus": corpus, "sft": sft, "prefs": prefs}


def write_toy_files(root: Path, seed: int = 0) -> dict[str, Path]:
    world = toy_world(seed=seed)
    paths = {
        "corpus": root / "corpus.jsonl",
        "sft_train": root / "sft" / "train.jsonl",
        "sft_test": root / "sft" / "test.jsonl",
        "prefs_train": root / "prefs" / "train.jsonl",
        "prefs_test": root / "prefs" / "test.jsonl",
    }
    write_jsonl(paths["corpus"], world["corpus"])
    write_jsonl(paths["sft_train"], world["sft"][:18])
    write_jsonl(paths["sft_test"], world["sft"][18:])
    write_jsonl(paths["prefs_train"], world["prefs"][:9])
    write_jsonl(paths["prefs_test"], world["prefs"][9:])
    return paths


def tiny_model_and_tokenizer(seed: int = 0):
    """A random-init Qwen2 (hidden 32, 2 layers) and a BPE tokenizer on the toy world."""
    world = toy_world()
    texts = [r["text"] for r in world["corpus"]] + [e.user for e in world["sft"]]
    tokenizer = train_tokenizer(texts, vocab_size=400, model_max_length=256)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(tiny_qwen2_config(tokenizer, **TINY_ARCH))
    model.config._attn_implementation = "sdpa"
    return model, tokenizer


def save_tiny_model(path: Path, seed: int = 0) -> Path:
    model, tokenizer = tiny_model_and_tokenizer(seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def run_sft(model_dir: Path, paths: dict[str, Path], out: Path, config) -> list[dict]:
    """`train_sft` on the toy files into `out`; its metrics rows."""
    from stylized_dpo.train.sft import train_sft

    metrics = out / "metrics.jsonl"
    train_sft(
        model_dir,
        paths["sft_train"],
        paths["sft_test"],
        out / "model",
        metrics,
        out / "ckpt",
        config,
    )
    return [json.loads(line) for line in metrics.read_text().splitlines()]
