"""Reference log-probs computed once per distinct sequence: a preference set that shares its
rejected answers with another scores only its own chosen answers, a rerun scores nothing, the
values equal a fresh computation's to float rounding, and another model reuses nothing."""

from __future__ import annotations

import dataclasses

import pyarrow.parquet as pq
import pytest
import torch
from train_helpers import save_tiny_model, tiny_model_and_tokenizer, toy_world

import stylized_dpo.train.reference as dpo
from stylized_dpo.io import write_jsonl
from stylized_dpo.train.reference import compute_reference_logps, reference_logps_file
from stylized_dpo.train.tokens import tokenize_pairs

torch.set_num_threads(1)


def restyled(records):
    """The style sets' shape: the same prompts and rejected answers, rewritten chosen ones."""
    return [dataclasses.replace(r, chosen="Absolutely! " + r.chosen) for r in records]


@pytest.fixture()
def scored(monkeypatch):
    """Counts the sequences the model scores (both answers of a pair count as two)."""
    counts = []
    pair_logps, completion_logps = dpo.pair_logps, dpo.completion_logps

    def counting(fn):
        def wrapper(*args, **kwargs):
            out = fn(*args, **kwargs)
            counts.append(out.numel())
            return out

        return wrapper

    monkeypatch.setattr(dpo, "pair_logps", counting(pair_logps))
    monkeypatch.setattr(dpo, "completion_logps", counting(completion_logps))
    return counts


@pytest.mark.parametrize("prefix_sharing", [True, False])
def test_shared_rejected_answers_are_scored_once(scored, prefix_sharing):
    model, tokenizer = tiny_model_and_tokenizer(seed=0)
    records = toy_world()["prefs"][:7]
    plain = tokenize_pairs(tokenizer, records)
    styled = tokenize_pairs(tokenizer, restyled(records))
    fresh = compute_reference_logps(model, styled, 3, tokenizer.pad_token_id, prefix_sharing)
    assert sum(scored) == 2 * len(styled)
    scored.clear()

    known: dict[str, float] = {}
    first = compute_reference_logps(model, plain, 3, tokenizer.pad_token_id, prefix_sharing, known)
    n_plain = sum(scored)
    assert n_plain == len(set(known)) <= 2 * len(plain)  # repeated sequences scored once
    scored.clear()
    second = compute_reference_logps(
        model, styled, 3, tokenizer.pad_token_id, prefix_sharing, known
    )
    assert sum(scored) == len(styled)  # only the rewritten chosen answers
    assert second["rejected_logp"].tolist() == first["rejected_logp"].tolist()
    for column in ("chosen_logp", "rejected_logp"):
        torch.testing.assert_close(
            torch.tensor(second[column].values),
            torch.tensor(fresh[column].values),
            atol=1e-5,
            rtol=1e-6,
        )
    assert second["prompt_id"].tolist() == [r.prompt_id for r in records]


def test_cache_across_files_and_reruns(tmp_path, scored):
    model_dir = save_tiny_model(tmp_path / "sft")
    records = toy_world()["prefs"][:7]
    write_jsonl(tmp_path / "plain.jsonl", records)
    write_jsonl(tmp_path / "styled.jsonl", restyled(records))
    cache = tmp_path / "cache"

    def run(name, pairs_file, model=model_dir):
        scored.clear()
        out = tmp_path / f"{name}.parquet"
        reference_logps_file(model, tmp_path / pairs_file, out, 3, 256, 256, "cpu", True, cache)
        return sum(scored), pq.read_table(out).to_pydict()

    n_plain, plain = run("plain", "plain.jsonl")
    assert n_plain > 0
    n_styled, styled = run("styled", "styled.jsonl")
    assert n_styled == len(records)
    assert styled["rejected_logp"] == plain["rejected_logp"]
    n_again, again = run("plain_again", "plain.jsonl")
    assert n_again == 0 and again == plain
    # uncached, the same numbers to float rounding
    scored.clear()
    reference_logps_file(
        model_dir, tmp_path / "styled.jsonl", tmp_path / "nocache.parquet", 3, 256, 256, "cpu", True
    )
    nocache = pq.read_table(tmp_path / "nocache.parquet").to_pydict()
    for column in ("chosen_logp", "rejected_logp"):
        torch.testing.assert_close(
            torch.tensor(styled[column]), torch.tensor(nocache[column]), atol=1e-5, rtol=1e-6
        )
    # other weights: nothing reused
    other = save_tiny_model(tmp_path / "other", seed=1)
    n_other, _ = run("other", "plain.jsonl", other)
    assert n_other == n_plain
