"""The `openai` judge against a local fault-injecting OpenAI-compatible server (127.0.0.1)."""

import json
from pathlib import Path

import pytest
from eval_helpers import FaultServer, completion

from stylized_dpo.api import InvalidReply
from stylized_dpo.evals.judge import JudgeConfig, judge_model, parse_judge_content, render_prompt
from stylized_dpo.io import read_records, write_jsonl
from stylized_dpo.records import JUDGE_CRITERIA, Generation, JudgeScore

TEMPLATE = Path(__file__).resolve().parents[1] / "config" / "prompts" / "judge.txt"
GOOD = {
    "helpfulness": 4,
    "relevance": 5,
    "factuality": 3,
    "harmlessness": 5,
    "reasons": {c: f"{c} is fine." for c in JUDGE_CRITERIA},
}

# One behaviour per call; the last repeats. Expected hits with max_retries=3, invalid_retries=2.
SCRIPT = {
    "ok": (["ok"], 1, True),
    "r429": (["429", "429", "ok"], 3, True),
    "r500": (["500", "ok"], 2, True),
    "slow": (["slow", "ok"], 2, True),  # the first reply comes after the client's timeout
    "trunc": (["truncated", "ok"], 2, True),
    "length": (["length", "ok"], 2, True),
    "fenced": (["fenced"], 1, True),
    "mixed": (["500", "malformed", "429", "ok"], 4, True),
    "malformed": (["malformed"], 3, False),  # 1 + 2 invalid retries
    "range": (["range"], 3, False),
    "float": (["float"], 3, False),
    "noreason": (["noreason"], 3, False),
    "always429": (["429"], 4, False),  # 1 + 3 transient retries
    "bad400": (["400"], 1, False),  # not retryable
}


def reply(behaviour: str, name: str, body: dict) -> tuple:
    assert body["response_format"] == {"type": "json_object"}
    assert body["model"] == "judge-test"
    assert body["messages"][0]["content"].startswith("You are an expert judge")
    error = {"error": {"message": behaviour, "type": "test"}}
    if behaviour == "ok":
        return 200, completion(json.dumps(GOOD)), {}
    if behaviour == "429":
        return 429, error, {"Retry-After": "0"}
    if behaviour == "500":
        return 500, error, {}
    if behaviour == "400":
        return 400, error, {}
    if behaviour == "truncated":
        return 200, completion(json.dumps(GOOD)[:40]), {}
    if behaviour == "length":
        return 200, completion(json.dumps(GOOD)[:60], finish_reason="length"), {}
    if behaviour == "fenced":
        return 200, completion("```json\n" + json.dumps(GOOD) + "\n```"), {}
    if behaviour == "malformed":
        return 200, completion("Sure! Helpfulness: 4, relevance: 5."), {}
    if behaviour == "range":
        return 200, completion(json.dumps({**GOOD, "factuality": 7})), {}
    if behaviour == "float":
        return 200, completion(json.dumps({**GOOD, "helpfulness": 4.0})), {}
    if behaviour == "noreason":
        return 200, completion(json.dumps({**GOOD, "reasons": {"relevance": "ok"}})), {}
    raise AssertionError(behaviour)


def _config(server: FaultServer, cache: Path) -> JudgeConfig:
    return JudgeConfig(
        backend="openai",
        model="judge-test",
        base_url=server.url,
        prompt=str(TEMPLATE),
        api_key_env="STYLIZED_DPO_TEST_KEY",
        concurrency=4,
        max_retries=3,
        invalid_retries=2,
        timeout_s=0.5,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        cache_dir=str(cache),
    )


def test_fault_injection_every_item_scored_or_failed_and_cache_prevents_repaying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STYLIZED_DPO_TEST_KEY", "sk-test-not-a-secret")
    gens = [
        Generation(
            prompt_id=f"id-{name}",
            prompt="What colour is the flag of Aland?",
            response=f"ITEM-{name} The flag of Aland is red. {{not a placeholder}}",
            model="sft",
            sampling={},
        )
        for name in SCRIPT
    ]
    write_jsonl(tmp_path / "gens.jsonl", gens)
    script = {name: plan for name, (plan, _, _) in SCRIPT.items()}
    with FaultServer(script, reply, slow_s=1.5) as server:
        config = _config(server, tmp_path / "cache")
        run = judge_model(
            tmp_path / "gens.jsonl", tmp_path / "out.jsonl", tmp_path / "run.json", config
        )
        first_hits = dict(server.hits)

        scores = read_records(tmp_path / "out.jsonl", JudgeScore)
        scored = {s.prompt_id for s in scores}
        failed = {f["id"] for f in run["failures"]}
        expect_ok = {f"id-{n}" for n, (_, _, ok) in SCRIPT.items() if ok}
        assert [s.prompt_id for s in scores] == [g.prompt_id for g in gens if g.prompt_id in scored]
        assert len(scores) == len(scored)  # no duplicates
        assert scored == expect_ok
        assert failed == {g.prompt_id for g in gens} - expect_ok  # nothing lost
        assert all(s.factuality == 3 and s.judge == "openai:judge-test" for s in scores)
        assert {n: first_hits[n] for n in SCRIPT} == {n: h for n, (_, h, _) in SCRIPT.items()}
        assert run["api_calls"] == sum(first_hits.values()) == 34
        assert (run["items"], run["scored"], run["failed"]) == (14, 8, 6)
        assert run["retries_rate_limit"] == 2 + 3 + 1
        assert run["retries_server_error"] == 2
        assert run["retries_timeout"] == 1
        assert run["retries_invalid"] == 1 + 1 + 1 + 2 * 4
        assert run["invalid_replies"] == 1 + 1 + 1 + 3 * 4
        # Usage is counted for every 200 reply the client read: 23 (not the timed-out one).
        assert (run["prompt_tokens"], run["completion_tokens"]) == (2300, 460)
        assert run["estimated_cost_usd"] == pytest.approx((2300 * 0.15 + 460 * 0.60) / 1e6)
        reasons = {f["id"]: f["reason"] for f in run["failures"]}
        assert "out of range" in reasons["id-range"]
        assert "not a JSON integer" in reasons["id-float"]
        assert "HTTP 400" in reasons["id-bad400"] and "HTTP 429" in reasons["id-always429"]
        assert "sk-test" not in (tmp_path / "run.json").read_text()

        # Rerun: scored items come from the cache (no call); failed items are tried again.
        rerun = judge_model(
            tmp_path / "gens.jsonl", tmp_path / "out2.jsonl", tmp_path / "run2.json", config
        )
        new_hits = {n: server.hits[n] - first_hits[n] for n in SCRIPT}
    assert all(new_hits[n] == 0 for n, (_, _, ok) in SCRIPT.items() if ok)
    assert all(new_hits[n] == h for n, (_, h, ok) in SCRIPT.items() if not ok)
    assert rerun["cached"] == 8 and rerun["failed"] == 6
    assert read_records(tmp_path / "out2.jsonl", JudgeScore) == scores


def test_missing_key_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STYLIZED_DPO_TEST_KEY", raising=False)
    write_jsonl(tmp_path / "g.jsonl", [Generation("p", "q", "a", "sft", {})])
    config = JudgeConfig(
        backend="openai",
        api_key_env="STYLIZED_DPO_TEST_KEY",
        prompt=str(TEMPLATE),
        cache_dir=str(tmp_path / "c"),
    )
    with pytest.raises(RuntimeError, match="STYLIZED_DPO_TEST_KEY is not set"):
        judge_model(tmp_path / "g.jsonl", tmp_path / "o.jsonl", tmp_path / "r.json", config)


def test_template_is_the_papers_and_renders_in_one_pass() -> None:
    template = TEMPLATE.read_text(encoding="utf-8")
    assert template.startswith("You are an expert judge evaluating a 0.5B parameter model")
    text = render_prompt(template, "Q {response}", "A {prompt} {}")
    assert "Q {response}" in text and "A {prompt} {}" in text
    assert '"helpfulness": int,' in text  # the JSON example's braces are left alone


@pytest.mark.parametrize(
    "content, error",
    [
        ('{"helpfulness": 4}', "relevance"),
        (json.dumps({**GOOD, "harmlessness": 0}), "out of range"),
        (json.dumps({**GOOD, "relevance": "5"}), "not a JSON integer"),
        (json.dumps({**GOOD, "relevance": True}), "not a JSON integer"),
        (json.dumps({**GOOD, "reasons": {**GOOD["reasons"], "factuality": " "}}), "factuality"),
        ("[1, 2]", "not an object"),
        ("", "empty"),
    ],
)
def test_invalid_judge_replies_are_rejected_not_coerced(content: str, error: str) -> None:
    with pytest.raises(InvalidReply, match=error):
        parse_judge_content(content)


def test_valid_reply_parses_exactly() -> None:
    assert parse_judge_content(json.dumps(GOOD)) == GOOD


class _Crash(BaseException):
    """Stands in for a kill: not an Exception, so nothing records it as an item failure."""


def test_a_crash_mid_run_never_pays_twice(tmp_path: Path) -> None:
    from types import SimpleNamespace

    calls: list[str] = []

    def create(**kwargs: object) -> SimpleNamespace:
        text = kwargs["messages"][0]["content"]  # type: ignore[index]
        calls.append(text)
        if len(calls) == 4:
            raise _Crash()
        return SimpleNamespace(model_dump=lambda: completion(json.dumps(GOOD)))

    client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    gens = [Generation(f"p{i}", "Q", f"answer {i}", "sft", {}) for i in range(6)]
    write_jsonl(tmp_path / "g.jsonl", gens)
    config = JudgeConfig(
        backend="openai",
        model="judge-test",
        prompt=str(TEMPLATE),
        concurrency=1,
        cache_dir=str(tmp_path / "cache"),
    )
    args = (tmp_path / "g.jsonl", tmp_path / "o.jsonl", tmp_path / "r.json", config)
    with pytest.raises(_Crash):
        judge_model(*args, client=client)
    assert not (tmp_path / "o.jsonl").exists()
    before = len(calls)
    # The worker thread may have started further items before the main thread saw the crash
    # and stopped the pool; whatever was answered is cached.
    assert 4 <= before <= 6
    run = judge_model(*args, client=client)
    # Every answer cached before the crash is reused; only the others are asked for.
    assert run["cached"] == before - 1 and run["api_calls"] == 6 - run["cached"]
    assert len(calls) == before + run["api_calls"] and run["scored"] == 6
