"""The openai backend against a local OpenAI-compatible server (127.0.0.1) with injected faults."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from stylized_dpo.io import DataError, read_records, write_jsonl
from stylized_dpo.records import PreferencePair
from stylized_dpo.synth.backends import OpenAISettings, SynthConfig
from stylized_dpo.synth.generator import SynthError
from stylized_dpo.synth.rewrite import rewrite_prefs
from stylized_dpo.synth.styles import load_style

STYLE = Path(__file__).resolve().parents[1] / "config" / "prompts" / "styles" / "persuasive.yaml"


def answer(i: int) -> str:
    return f"The fact {i} is blue."


@pytest.fixture
def pairs_file(tmp_path):
    path = tmp_path / "train.jsonl"
    write_jsonl(
        path,
        [
            PreferencePair(f"p{i:03d}", f"Q{i}?", answer(i), f"The fact {i} is red.")
            for i in range(12)
        ],
    )
    return path


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("TEST_SYNTH_KEY", "test-key")


def config(url, **openai_kw):
    settings = {
        "base_url": url,
        "api_key_env": "TEST_SYNTH_KEY",
        "timeout_s": 0.3,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "concurrency": 4,
        "max_retries": 6,
        **openai_kw,
    }
    return SynthConfig(
        backend="openai",
        model="gemma-test",
        batch_size=5,
        max_new_tokens=64,
        openai=OpenAISettings(**settings),
    )


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_transient_faults_are_retried(tmp_path, pairs_file):
    plan = {
        answer(0): ["429", "429"],
        answer(1): ["500"],
        answer(2): ["503", "timeout"],
        answer(3): ["malformed"],
        answer(4): ["no_choices", "500", "429"],
    }
    with FakeOpenAI(plan) as server:
        out = tmp_path / "o.jsonl"
        card = rewrite_prefs(
            pairs_file, load_style(STYLE), config(server.url), out, tmp_path / "c.jsonl"
        )
    assert card["rows_out"] == 12 and card["drops_total"] == 0
    assert card["retries"] == {"429": 3, "5xx": 3, "timeout": 1, "malformed": 2}
    assert all(n == 1 for n in server.successes.values()) and len(server.successes) == 12
    rows = read_records(out, PreferencePair)
    assert rows[0].chosen == f"STYLED: {answer(0)}!"
    assert rows[0].provenance["backend"] == "openai"
    assert rows[0].provenance["generator_model"] == "gemma-test"
    assert rows[0].provenance["original_chosen"] == answer(0)
    assert rows[0].provenance["finish_reason"] == "stop"
    body = server.bodies[0]
    assert body["model"] == "gemma-test" and body["max_tokens"] == 64
    assert (body["temperature"], body["top_p"]) == (0.7, 0.95)
    assert isinstance(body["seed"], int)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


def test_bad_completions_are_counted_drops(tmp_path, pairs_file):
    plan = {
        answer(0): ["length"],
        answer(1): ["empty"],
        answer(2): ["refusal"],
        answer(3): ["copy"],
    }
    with FakeOpenAI(plan) as server:
        card = rewrite_prefs(
            pairs_file,
            load_style(STYLE),
            config(server.url),
            tmp_path / "o.jsonl",
            tmp_path / "c.jsonl",
        )
    assert card["drops"] == {"empty": 1, "truncated": 1, "refusal": 1, "verbatim_copy": 1}
    assert card["rows_out"] == 8 == len(read_records(tmp_path / "o.jsonl", PreferencePair))


def test_a_rejected_request_fails_its_row_not_its_batch(tmp_path, pairs_file):
    with FakeOpenAI({answer(7): ["400"]}) as server:
        card = rewrite_prefs(
            pairs_file,
            load_style(STYLE),
            config(server.url),
            tmp_path / "o.jsonl",
            tmp_path / "c.jsonl",
        )
        assert server.attempts[answer(7)] == 1  # a 400 is not retried
        assert card["failed"] == {"rejected": 1} and card["rows_out"] == 11
        assert card["drop_examples"]["failed_rejected"]["prompt_id"] == "p007"
        # the failed row is not cached: a fresh run (new output) asks for it alone again
        again = rewrite_prefs(
            pairs_file,
            load_style(STYLE),
            config(server.url),
            tmp_path / "o2.jsonl",
            tmp_path / "c.jsonl",
        )
    assert again["from_cache"] == 11 and again["generated_this_run"] == 1
    assert again["rows_out"] == 12 and again["failed"] == {}


def test_retries_are_bounded_and_a_spent_row_is_counted(tmp_path, pairs_file):
    with FakeOpenAI({answer(0): ["500"] * 10}) as server:
        card = rewrite_prefs(
            pairs_file,
            load_style(STYLE),
            config(server.url, max_retries=2),
            tmp_path / "o.jsonl",
            tmp_path / "c.jsonl",
        )
    assert server.attempts[answer(0)] == 3
    assert card["failed"] == {"gave_up": 1} and card["rows_out"] == 11
    assert (
        "gave up after 3 attempts; last error 5xx"
        in (card["drop_examples"]["failed_gave_up"]["text"])
    )


def test_every_row_failing_stops_the_run(tmp_path, pairs_file):
    with FakeOpenAI({answer(i): ["400"] for i in range(12)}) as server:
        with pytest.raises(DataError, match=r"12 of 12 rewrites .* failed \(\{'rejected': 12\}\)"):
            rewrite_prefs(
                pairs_file,
                load_style(STYLE),
                config(server.url),
                tmp_path / "o.jsonl",
                tmp_path / "c.jsonl",
            )
    assert not (tmp_path / "o.jsonl").exists()


def test_concurrency_is_bounded(tmp_path, pairs_file):
    with FakeOpenAI(latency_s=0.05) as server:
        cfg = config(server.url, concurrency=3)
        cfg = SynthConfig(**{**cfg.__dict__, "batch_size": 12})
        rewrite_prefs(
            pairs_file, load_style(STYLE), cfg, tmp_path / "o.jsonl", tmp_path / "c.jsonl"
        )
    assert 2 <= server.max_in_flight <= 3


def test_missing_key_names_the_variable_not_the_key(tmp_path, pairs_file, monkeypatch):
    monkeypatch.delenv("TEST_SYNTH_KEY")
    with pytest.raises(SynthError, match="TEST_SYNTH_KEY"):
        rewrite_prefs(
            pairs_file,
            load_style(STYLE),
            config("http://127.0.0.1:9/v1"),
            tmp_path / "o.jsonl",
            tmp_path / "c.jsonl",
        )


def test_wrong_key_is_not_retried(tmp_path, pairs_file):
    with FakeOpenAI(api_key="other") as server:
        with pytest.raises(SynthError, match="401") as e:
            rewrite_prefs(
                pairs_file,
                load_style(STYLE),
                config(server.url),
                tmp_path / "o.jsonl",
                tmp_path / "c.jsonl",
            )
    assert "test-key" not in str(e.value)


RUN = textwrap.dedent("""
    import sys
    from stylized_dpo.synth.backends import OpenAISettings, SynthConfig
    from stylized_dpo.synth.rewrite import rewrite_prefs
    from stylized_dpo.synth.styles import load_style
    url, pairs, out, cache, style = sys.argv[1:]
    cfg = SynthConfig(backend="openai", model="gemma-test", batch_size=4,
                      openai=OpenAISettings(base_url=url, api_key_env="TEST_SYNTH_KEY",
                                            concurrency=2, timeout_s=5))
    rewrite_prefs(pairs, load_style(style), cfg, out, cache)
""")


def test_sigkill_then_resume_gives_the_same_file(tmp_path):
    """A real kill -9 of a rewriting process at about half way, then a restart."""
    n = 40
    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(pairs, [PreferencePair(f"p{i:03d}", f"Q{i}?", answer(i), "No.") for i in range(n)])
    style = load_style(STYLE)
    out, cache = tmp_path / "o.jsonl", tmp_path / "cache.jsonl"
    with FakeOpenAI(latency_s=0.02) as server:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUN, server.url, str(pairs), str(out), str(cache), str(STYLE)],
            env={**os.environ},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if cache.exists() and cache.read_text().count("\n") >= n // 2:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert not out.exists()
        cached = cache.read_text().count("\n")
        assert n // 2 <= cached < n
        cfg = SynthConfig(
            backend="openai",
            model="gemma-test",
            batch_size=4,
            openai=OpenAISettings(
                base_url=server.url, api_key_env="TEST_SYNTH_KEY", concurrency=2, timeout_s=5
            ),
        )
        card = rewrite_prefs(pairs, style, cfg, out, cache)
        assert card["from_cache"] == cached and card["generated_this_run"] == n - cached
        # a clean, uninterrupted run on its own cache writes the same bytes
        rewrite_prefs(pairs, style, cfg, tmp_path / "clean.jsonl", tmp_path / "clean_cache.jsonl")
    assert sha(out) == sha(tmp_path / "clean.jsonl")
    keys = [json.loads(line)["key"] for line in cache.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == n  # no row stored twice
    # requests in flight at the kill (at most one batch) are the only ones sent twice
    first_run_and_resume = sum(server.attempts.values()) - n  # minus the clean run
    assert n <= first_run_and_resume <= n + 2  # concurrency 2: each row is cached on arrival
