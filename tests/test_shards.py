"""Tokenised shards: the same examples as tokenising on the spot, keyed by tokenizer and limits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from train_helpers import save_tiny_model, tiny_model_and_tokenizer, write_toy_files

from stylized_dpo.hashing import tokenizer_fingerprint
from stylized_dpo.model import build_tokenizer, load_tokenizer
from stylized_dpo.train.batching import step_schedule
from stylized_dpo.train.distributed import Dist
from stylized_dpo.train.dpo import DPOConfig, train_dpo
from stylized_dpo.train.sft import SFTConfig, train_sft
from stylized_dpo.train.shards import (
    batch_lengths,
    keep_share,
    load_chats,
    load_pairs,
    read_shard,
    write_shard,
)


@pytest.fixture
def toy(tmp_path):
    paths = write_toy_files(tmp_path)
    _, tokenizer = tiny_model_and_tokenizer()
    return paths, tokenizer


@pytest.mark.parametrize("kind", ["sft", "prefs"])
def test_shard_holds_exactly_the_on_the_spot_tokenisation(tmp_path, toy, kind):
    paths, tokenizer = toy
    source = paths["sft_train" if kind == "sft" else "prefs_train"]
    limits = (56, 12)  # some toy answers are longer than 12 tokens: drops happen
    card = write_shard(
        kind, source, tokenizer, tmp_path / "t.parquet", tmp_path / "t.json", *limits
    )
    load = load_chats if kind == "sft" else load_pairs
    assert list(load(tmp_path / "t.parquet", tokenizer, *limits)) == list(
        load(source, tokenizer, *limits)
    )
    n_in = len(source.read_text().splitlines())
    assert card["rows_in"] == n_in
    assert card["rows_out"] + sum(card["drops"].values()) == n_in
    assert card["drops"]["completion_too_long"] > 0
    assert json.loads((tmp_path / "t.json").read_text()) == card
    assert card["prompt_tokens"]["max"] <= 56


def test_shard_refuses_another_tokenizer_or_other_limits(tmp_path, toy):
    paths, tokenizer = toy
    shard = tmp_path / "t.parquet"
    write_shard("sft", paths["sft_train"], tokenizer, shard, tmp_path / "t.json", 256, 256)
    with pytest.raises(ValueError, match="max_completion_tokens is 256 but this run needs 100"):
        read_shard("sft", shard, tokenizer, 256, 100)
    with pytest.raises(ValueError, match="kind"):
        read_shard("prefs", shard, tokenizer, 256, 256)
    other = load_tokenizer(save_tiny_model(tmp_path / "other"))
    other.chat_template = other.chat_template.replace("assistant", "bot")
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(tokenizer)
    with pytest.raises(ValueError, match="tokenizer_fingerprint"):
        read_shard("sft", shard, other, 256, 256)


def test_fingerprint_survives_save_and_load_and_the_chat_eos_switch(tmp_path, toy):
    _, tokenizer = toy
    tokenizer.save_pretrained(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert tokenizer_fingerprint(loaded) == tokenizer_fingerprint(tokenizer)
    # beside a model config transformers loads it as another class, with other default fields
    beside_model = load_tokenizer(save_tiny_model(tmp_path / "model"))
    assert tokenizer_fingerprint(beside_model) == tokenizer_fingerprint(tokenizer)
    loaded.eos_token = "<|im_end|>"  # what SFT saves for generation: ids are unchanged
    assert tokenizer_fingerprint(loaded) == tokenizer_fingerprint(tokenizer)


def test_build_tokenizer_replaces_the_chat_template(tmp_path, toy):
    paths, _ = toy
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}\n{% endfor %}")
    tok = build_tokenizer(
        "pretrain",
        tmp_path / "tok",
        corpus_path=paths["corpus"],
        chats_path=paths["sft_train"],
        vocab_size=400,
        model_max_length=128,
        chat_template_path=template,
    )
    saved = load_tokenizer(tmp_path / "tok")
    assert saved.chat_template == template.read_text() == tok.chat_template
    assert saved.model_max_length == 128
    with pytest.raises(ValueError, match="needs the model's name"):
        build_tokenizer("hub", tmp_path / "x")


def test_sft_on_a_shard_equals_sft_on_the_jsonl(tmp_path, toy):
    paths, tokenizer = toy
    torch.set_num_threads(1)
    model_dir = save_tiny_model(tmp_path / "model")
    cfg = SFTConfig(batch_size=4, max_steps=3, lr=1e-3, max_completion_tokens=30)
    shards = {}
    for split in ("train", "test"):
        shards[split] = tmp_path / f"{split}.parquet"
        write_shard(
            "sft", paths[f"sft_{split}"], tokenizer, shards[split], tmp_path / f"{split}.json",
            cfg.max_prompt_tokens, cfg.max_completion_tokens,
        )  # fmt: skip
    weights = []
    for name, (train, test) in {
        "jsonl": (paths["sft_train"], paths["sft_test"]),
        "shard": (shards["train"], shards["test"]),
    }.items():
        out = tmp_path / name
        train_sft(model_dir, train, test, out / "m", out / "metrics.jsonl", out / "ckpt", cfg)
        weights.append(load_file(out / "m" / "model.safetensors"))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def list_reader(kind, path, tokenizer, max_prompt_tokens, max_completion_tokens):
    """The shard reader as it was: every token a Python int (~50 bytes per token)."""
    import pyarrow.parquet as pq

    from stylized_dpo.train.shards import SHARD_COLUMNS
    from stylized_dpo.train.tokens import TokenizedChat, TokenizedPair

    data = pq.read_table(path).to_pydict()
    make = TokenizedChat if kind == "sft" else TokenizedPair
    return [make(*row) for row in zip(*(data[c] for c in SHARD_COLUMNS[kind]), strict=True)]


def toy_shards(tmp_path, paths, tokenizer, kind, limits):
    shards = {}
    for split in ("train", "test"):
        shards[split] = tmp_path / f"{kind}_{split}.parquet"
        write_shard(
            kind, paths[f"{kind}_{split}"], tokenizer, shards[split],
            tmp_path / f"{kind}_{split}.json", *limits,
        )  # fmt: skip
    return shards


@pytest.mark.parametrize("kind", ["sft", "prefs"])
def test_array_reader_gives_the_list_readers_rows_and_lengths(tmp_path, toy, kind, monkeypatch):
    paths, tokenizer = toy
    limits = (56, 12)
    shards = toy_shards(tmp_path, paths, tokenizer, kind, limits)
    monkeypatch.setattr("stylized_dpo.train.shards.READ_BATCH_ROWS", 5)  # several batches
    shard = read_shard(kind, shards["train"], tokenizer, *limits)
    old = list_reader(kind, shards["train"], tokenizer, *limits)
    assert shard.held_tokens() == 0  # lengths only until a row is needed
    assert len(shard) == len(old) and list(shard) == old
    assert batch_lengths(shard) == batch_lengths(old)
    assert shard.ids == [x.prompt_id for x in old]
    assert all(v.dtype == np.int32 for v in shard._values.values())


def test_each_process_holds_only_its_share(tmp_path, toy, monkeypatch):
    paths, tokenizer = toy
    shards = toy_shards(tmp_path, paths, tokenizer, "sft", (256, 256))
    monkeypatch.setattr("stylized_dpo.train.shards.READ_BATCH_ROWS", 4)
    full = read_shard("sft", shards["train"], tokenizer, 256, 256)
    schedule = step_schedule(batch_lengths(full), 3, 2, 1, None, seed=0)  # 3 steps x 2
    total = sum(len(full[i].input_ids) for i in range(len(full)))
    held = []
    for rank in (0, 1):
        dist = Dist(rank=rank, world_size=2)
        shard = read_shard("sft", shards["train"], tokenizer, 256, 256)
        keep_share(shard, schedule, dist)
        for step in schedule:
            for mb in dist.step_share(step)[0]:
                assert [shard[i] for i in mb] == [full[i] for i in mb]
        held.append(shard.held_tokens())
        other = next(i for step in schedule for i in step[1 - rank] if i not in shard._rows)
        with pytest.raises(KeyError, match="not held by this process"):
            shard[other]
    assert sum(held) == total and max(held) < 0.75 * total  # disjoint shares


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_array_reader_trains_bitwise_like_the_list_reader(tmp_path, toy, monkeypatch, stage):
    """Same batches, same weights: the reader changes memory, not a single bit of the model."""
    from stylized_dpo.train import dpo, sft

    paths, tokenizer = toy
    torch.set_num_threads(1)
    model_dir = save_tiny_model(tmp_path / "model")
    if stage == "sft":
        cfg = SFTConfig(batch_size=4, max_steps=3, lr=1e-3, max_completion_tokens=30)
        kind, module, name, train = "sft", sft, "load_chats", train_sft
    else:
        cfg = DPOConfig(
            batch_size=3, max_steps=3, lr=1e-3, eval_every=2, reference="model", optimizer="adamw"
        )
        kind, module, name, train = "prefs", dpo, "load_pairs", train_dpo
    shards = toy_shards(tmp_path, paths, tokenizer, kind, limits(cfg))
    weights = []
    for reader in ("arrays", "lists"):
        if reader == "lists":
            monkeypatch.setattr(module, name, lambda *a: list_reader(kind, *a))
        out = tmp_path / reader
        train(
            model_dir, shards["train"], shards["test"], out / "m", out / "m.jsonl", out / "c", cfg
        )
        weights.append(load_file(out / "m" / "model.safetensors"))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def limits(cfg):
    return cfg.max_prompt_tokens, cfg.max_completion_tokens
