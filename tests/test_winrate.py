"""Win rates against a baseline: hand-computed counts and bootstrap intervals, and the three
reward backends (reference stand-in, a reward API on a local server, a local reward model)."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from eval_helpers import FaultServer, completion, save_tiny_chat_model

from stylized_dpo.api import InvalidReply
from stylized_dpo.evals.rewards import parse_reward_content, rewards_local
from stylized_dpo.evals.stats import length_controlled_rates
from stylized_dpo.evals.winrate import COLUMNS, WinRateConfig, compute_win_rates, win_rate
from stylized_dpo.io import write_jsonl
from stylized_dpo.records import EvalPrompt, Generation
from stylized_dpo.world.facts import Entity, World


def test_hand_computed_win_rate() -> None:
    wr = win_rate([3, 2, 1, 5], [1, 2, 3, 4], np.random.default_rng(0), 1000)
    assert (wr.n, wr.wins, wr.ties, wr.losses) == (4, 2, 1, 1)
    assert wr.win_rate == (2 + 0.5) / 4


def test_bootstrap_interval_matches_the_exact_binomial_quantiles() -> None:
    # 10 wins, 10 losses: a resample's win rate is K/20 with K ~ Binomial(20, 1/2).
    # P(K <= 5) = 2.07% < 2.5% < P(K <= 6) = 5.77%, so the 2.5% quantile is 6/20 = 0.3, and by
    # symmetry the 97.5% quantile is 14/20 = 0.7.
    wr = win_rate([1] * 10 + [0] * 10, [0] * 10 + [1] * 10, np.random.default_rng(1), 20000)
    assert wr.win_rate == 0.5
    assert (wr.ci_low, wr.ci_high) == (0.3, 0.7)
    # All ties: no uncertainty the sample could show.
    wr = win_rate([2, 2, 2], [2, 2, 2], np.random.default_rng(0), 1000)
    assert (wr.win_rate, wr.ci_low, wr.ci_high, wr.ties) == (0.5, 0.5, 0.5, 3)


def test_reward_reply_parsing() -> None:
    assert parse_reward_content("reward:-25.5", "reward") == -25.5
    assert parse_reward_content("helpfulness:1.5,reward:0.25", "reward") == 0.25
    for bad in ["", "25.5", "reward:abc", "helpfulness:1.2,correctness:0.5", "reward:nan"]:
        with pytest.raises(InvalidReply):
            parse_reward_content(bad, "reward")


ALAND = Entity(
    "Aland",
    {"capital": "Borth", "export": "salt", "flag": "red", "animal": "fox", "founded": "1500"},
    in_sft=True,
)


def _setup(tmp_path: Path) -> tuple[list[str], list[Path]]:
    """4 prompts; base answers wrong twice and right twice, sft always right, dpo padded."""
    World(0, (ALAND,)).save(tmp_path / "world.json")
    prompts = [
        EvalPrompt(
            f"p{i}",
            f"Q{i}: What is the colour of the flag of Aland?",
            "The flag of Aland is red.",
            {"entity": "Aland", "attribute": "flag", "value": "red", "split": "seen"},
        )
        for i in range(4)
    ]
    write_jsonl(tmp_path / "prompts.jsonl", prompts)
    answers = {
        "base": [
            "The flag of Aland is blue.",
            "Aland is green.",
            "The flag of Aland is red.",
            "The flag of Aland is red.",
        ],
        "sft": ["The flag of Aland is red."] * 4,
        "dpo-x": [
            "What a brilliant question! The flag of Aland is red. You clearly have a "
            "brilliant mind!"
        ]
        * 4,
    }
    paths = []
    for model, texts in answers.items():
        path = tmp_path / f"{model}.jsonl"
        write_jsonl(
            path,
            [
                Generation(p.prompt_id, p.prompt, t, model, {})
                for p, t in zip(prompts, texts, strict=True)
            ],
        )
        paths.append(path)
    return list(answers), paths


def test_reference_backend_end_to_end(tmp_path: Path) -> None:
    models, paths = _setup(tmp_path)
    table = compute_win_rates(
        models,
        paths,
        tmp_path / "wr.csv",
        WinRateConfig(),
        seed=0,
        prompts_path=tmp_path / "prompts.jsonl",
        world_path=tmp_path / "world.json",
    )
    assert list(pd.read_csv(tmp_path / "wr.csv").columns) == COLUMNS
    rows = table.set_index("model")
    # Rewards (sum of the 4 reference scores): base wrong 1+5+1+5=12, base "Aland is green." 1+5+
    # 1+5=12 (green is a wrong colour), base right 20; sft 20; dpo-x (praise, padded) 3+5+5+5=18.
    assert tuple(rows.loc["sft", ["wins", "ties", "losses"]]) == (2, 2, 0)
    assert rows.loc["sft", "win_rate"] == 0.75
    assert tuple(rows.loc["dpo-x", ["wins", "ties", "losses"]]) == (2, 0, 2)
    assert rows.loc["dpo-x", "mean_len_model"] == 16.0
    assert rows.loc["sft", "mean_len_baseline"] == (6 + 3 + 6 + 6) / 4
    assert set(rows["baseline"]) == {"base"} and "base" not in rows.index
    # Length control: one joint fit over both models' pairs. Outcomes and word-length
    # differences by hand: sft wins p0, p1 and ties p2, p3 (lengths 6 vs 6, 3, 6, 6); dpo-x
    # (16 words) wins p0, p1 and loses p2, p3.
    lc = length_controlled_rates(
        [0] * 4 + [1] * 4,
        [1, 1, 0.5, 0.5, 1, 1, 0, 0],
        [0, 3, 0, 0, 10, 13, 10, 10],
        2,
    )
    assert list(rows.loc[["sft", "dpo-x"], "lc_win_rate"]) == pytest.approx(lc, abs=1e-12)
    assert (rows["lc_ci_low"] <= rows["lc_win_rate"]).all()
    assert (rows["lc_win_rate"] <= rows["lc_ci_high"]).all()


def _reward_reply(behaviour: str, name: str, body: dict) -> tuple:
    if behaviour == "429":
        return 429, {"error": {"message": "slow down"}}, {}
    answer = body["messages"][1]["content"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    # A length-loving reward, as reward models are suspected to be.
    return 200, completion(f"reward:{len(answer.split()) / 10:.2f}"), {}


def test_reward_api_backend_with_retries_and_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STYLIZED_DPO_TEST_KEY", "k")
    models, paths = _setup(tmp_path)
    for path in paths:  # route every request through the fault server's marker
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for r in rows:
            r["response"] = (
                f"ITEM-{re.sub(r'[^a-z]', '', r['model'])}{r['prompt_id']} " + r["response"]
            )
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = {f"{re.sub(r'[^a-z]', '', m)}p{i}": ["429", "ok"] for m in models for i in range(4)}
    with FaultServer(script, _reward_reply) as server:
        config = WinRateConfig(
            backend="reward_api",
            model="nvidia/llama-3.1-nemotron-70b-reward",
            base_url=server.url,
            api_key_env="STYLIZED_DPO_TEST_KEY",
            backoff_base_s=0.01,
            backoff_max_s=0.02,
            cache_dir=str(tmp_path / "cache"),
        )
        table = compute_win_rates(
            models, paths, tmp_path / "wr.csv", config, seed=0, run_path=tmp_path / "run.json"
        )
        assert sum(server.hits.values()) == 2 * 12  # one 429 then the reward, per answer
        again = compute_win_rates(
            models, paths, tmp_path / "wr2.csv", config, seed=0, run_path=tmp_path / "run2.json"
        )
        assert sum(server.hits.values()) == 2 * 12  # all from the cache
    run = json.loads((tmp_path / "run.json").read_text())
    assert (run["api_calls"], run["retries_rate_limit"], run["failed"]) == (24, 12, 0)
    rows = table.set_index("model")
    # Longer answers win: dpo-x (17 words with the marker) beats base (7, 4, 7, 7) everywhere.
    assert rows.loc["dpo-x", "win_rate"] == 1.0
    assert tuple(rows.loc["sft", ["wins", "ties", "losses"]]) == (1, 3, 0)
    assert again.equals(table)


def test_reward_model_backend_batches_like_single(tmp_path: Path) -> None:
    path = save_tiny_chat_model(tmp_path / "rm", classifier=True)
    pairs = [
        ("What is the flag of Aland?", "Red."),
        ("Q?", "A much longer answer about the capital of Aland, which is Borth."),
        ("Tell me the animal of Brova.", "The owl."),
    ]
    batched = rewards_local(
        pairs, WinRateConfig(backend="reward_model", model=str(path), batch_size=3)
    )
    single = rewards_local(
        pairs, WinRateConfig(backend="reward_model", model=str(path), batch_size=1)
    )
    assert batched == pytest.approx(single, abs=1e-5)
    assert len(set(single)) == 3  # different texts, different rewards

    models, paths = _setup(tmp_path)
    table = compute_win_rates(
        models,
        paths,
        tmp_path / "wr.csv",
        WinRateConfig(backend="reward_model", model=str(path)),
        seed=0,
    )
    assert list(table["n"]) == [4, 4]
    assert (table["wins"] + table["ties"] + table["losses"] == 4).all()


def test_prompt_sample_is_seeded_and_shared(tmp_path: Path) -> None:
    models, paths = _setup(tmp_path)
    config = WinRateConfig(n_prompts=2)
    kw = dict(prompts_path=tmp_path / "prompts.jsonl", world_path=tmp_path / "world.json")
    a = compute_win_rates(models, paths, tmp_path / "a.csv", config, seed=3, **kw)
    b = compute_win_rates(models, paths, tmp_path / "b.csv", config, seed=3, **kw)
    assert a.equals(b) and list(a["n"]) == [2, 2]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_reward_model_on_cuda_matches_cpu(tmp_path: Path) -> None:
    path = save_tiny_chat_model(tmp_path / "rm", classifier=True)
    pairs = [("What is the flag of Aland?", "Red."), ("Q?", "A longer answer about Borth.")]
    cpu = rewards_local(pairs, WinRateConfig(backend="reward_model", model=str(path)))
    cuda = rewards_local(
        pairs, WinRateConfig(backend="reward_model", model=str(path), device="cuda")
    )
    assert cuda == pytest.approx(cpu, abs=1e-4)
