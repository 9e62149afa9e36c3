"""The pairwise LLM-judge win-rate backend: verdict parsing, the both-orders rule, and a run
against a local fault-injecting OpenAI-compatible server (127.0.0.1)."""

import json
from pathlib import Path

import pandas as pd
import pytest
from eval_helpers import FaultServer, completion

from stylized_dpo.api import InvalidReply
from stylized_dpo.evals.rewards import pairwise_outcome, parse_verdict, render_pairwise
from stylized_dpo.evals.winrate import COLUMNS, WinRateConfig, compute_win_rates
from stylized_dpo.io import write_jsonl
from stylized_dpo.records import Generation

TEMPLATE = Path(__file__).resolve().parents[1] / "config/prompts/pairwise_judge.txt"


def test_parse_verdict() -> None:
    assert parse_verdict("A is right.\nVerdict: A") == "A"
    assert parse_verdict("verdict: **B**") == "B"
    assert parse_verdict("Both fine.\nVerdict: Tie") == "tie"
    assert parse_verdict("Verdict: B\n(repeated) Verdict: B") == "B"
    for bad in ["", "A is better.", "Verdict: C", "Verdict: A\nVerdict: B", None]:
        with pytest.raises(InvalidReply):
            parse_verdict(bad)


def test_both_orders_rule() -> None:
    # (verdict with the model's answer as A, verdict with it as B) -> the model's score
    assert pairwise_outcome("A", "B") == 1.0  # both orders prefer the model: a win
    assert pairwise_outcome("B", "A") == 0.0  # both prefer the baseline: a loss
    assert pairwise_outcome("A", "A") == 0.5  # always the first answer: position bias, a tie
    assert pairwise_outcome("B", "B") == 0.5  # always the second answer: a tie
    assert pairwise_outcome("tie", "B") == 0.5
    assert pairwise_outcome("tie", "tie") == 0.5


def test_template_renders_in_one_pass() -> None:
    template = TEMPLATE.read_text()
    text = render_pairwise(template, "Q {answer_b}", "first {question}", "second")
    assert "Q {answer_b}" in text and "first {question}" in text
    assert text.index("first {question}") < text.index("second")
    with pytest.raises(ValueError, match="answer_b"):
        render_pairwise("{question} {answer_a}", "q", "a", "b")


def _judge(behaviour: str, name: str, body: dict) -> tuple:
    """A judge that prefers the answer saying RIGHT; `biasA` always picks the first answer."""
    if behaviour == "429":
        return 429, {"error": {"message": "slow down"}}, {"retry-after": "0"}
    if behaviour == "malformed":
        return 200, completion("Both have merits; I cannot decide."), {}
    assert body["temperature"] == 0.0 and body["max_tokens"] == 512
    text = body["messages"][0]["content"]
    reply_a = text.split("[Reply A]", 1)[1].split("[Reply B]", 1)[0]
    reply_b = text.split("[Reply B]", 1)[1]
    if behaviour == "biasA":
        verdict = "A"
    elif ("RIGHT" in reply_a) == ("RIGHT" in reply_b):
        verdict = "tie"
    else:
        verdict = "A" if "RIGHT" in reply_a else "B"
    return 200, completion(f"Compared the replies.\nVerdict: {verdict}"), {}


def test_pairwise_judge_against_a_local_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STYLIZED_DPO_TEST_KEY", "k")
    # The server routes a request by the first ITEM marker in it: answer A's.
    answers = {
        "base": ["WRONG", "WRONG", "RIGHT", "WRONG", "RIGHT"],
        "sft": ["RIGHT", "RIGHT", "WRONG", "WRONG", "RIGHT"],
    }
    paths = []
    for model, texts in answers.items():
        path = tmp_path / f"{model}.jsonl"
        rows = [
            Generation(f"p{i}", f"Question {i}?", f"ITEM-{model}{i} {t}", model, {})
            for i, t in enumerate(texts)
        ]
        write_jsonl(path, rows)
        paths.append(path)
    script = {
        "sft0": ["429", "ok"],  # a rate limit, retried; then both orders agree: sft wins
        "base0": ["ok"],
        "sft1": ["biasA"],  # position bias: each order picks its first answer -> tie
        "base1": ["biasA"],
        "sft2": ["ok"],  # both orders prefer the baseline: a loss
        "base2": ["ok"],
        "sft3": ["ok"],  # both WRONG: the judge says tie in both orders
        "base3": ["ok"],
        "sft4": ["malformed"],  # never a verdict: retried, then counted failed
        "base4": ["ok"],
    }
    config = WinRateConfig(
        backend="pairwise_judge",
        model="judge-test",
        prompt=str(TEMPLATE),
        base_url=None,
        api_key_env="STYLIZED_DPO_TEST_KEY",
        backoff_base_s=0.01,
        backoff_max_s=0.02,
        invalid_retries=2,
        cache_dir=str(tmp_path / "cache"),
    )
    with FaultServer(script, _judge) as server:
        config = WinRateConfig(**{**config.__dict__, "base_url": server.url})
        models = list(answers)
        table = compute_win_rates(
            models, paths, tmp_path / "wr.csv", config, seed=0, run_path=tmp_path / "run.json"
        )
        # p0: 2 + 1, p1..p3: 1 + 1 each, p4: 3 malformed attempts with sft first, 1 with base.
        assert sum(server.hits.values()) == 3 + 6 + 3 + 1 == 13
        assert server.hits["sft4"] == 3
        again = compute_win_rates(
            models, paths, tmp_path / "wr2.csv", config, seed=0, run_path=tmp_path / "run2.json"
        )
        # Valid verdicts come from the cache; only the failed order is asked again.
        assert sum(server.hits.values()) == 13 + 3
    assert list(pd.read_csv(tmp_path / "wr.csv").columns) == COLUMNS
    row = table.set_index("model").loc["sft"]
    assert (row["n"], row["wins"], row["ties"], row["losses"], row["n_failed"]) == (4, 1, 2, 1, 1)
    assert row["win_rate"] == (1 + 2 * 0.5) / 4
    assert row["backend"] == "pairwise_judge" and row["baseline"] == "base"
    run = json.loads((tmp_path / "run.json").read_text())
    assert (run["api_calls"], run["retries_rate_limit"], run["failed"]) == (13, 1, 1)
    assert (run["invalid_replies"], run["retries_invalid"], run["pairs_scored"]) == (3, 2, 10)
    run2 = json.loads((tmp_path / "run2.json").read_text())
    assert (run2["cached"], run2["api_calls"]) == (9, 3)
    assert again.equals(table)
