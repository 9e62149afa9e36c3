import hashlib
import json
import sys
import types
from pathlib import Path

import pytest
from chat_templates import NO_SYSTEM_CHAT_TEMPLATE, gemma_like_tokenizer

from stylized_dpo.io import DataError, read_records, write_jsonl
from stylized_dpo.records import PreferencePair
from stylized_dpo.synth.backends import RulesBackend, SynthConfig, VLLMSettings
from stylized_dpo.synth.generator import Completion, SynthError, render_chat
from stylized_dpo.synth.rewrite import Cache, quality_check, rewrite_prefs
from stylized_dpo.synth.styles import StyleSpec, load_style
from stylized_dpo.synth.vllm_backend import VLLMBackend, prompt_tokens, vllm_engine_kwargs

STYLE_DIR = Path(__file__).resolve().parents[1] / "config" / "prompts" / "styles"
STYLES = ("sycophantic", "authoritative", "persuasive")

PROVENANCE_KEYS = {
    "backend",
    "generator_model",
    "style",
    "style_prompt_hash",
    "sampling",
    "seed",
    "finish_reason",
    "original_chosen",
}


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def pairs_file(tmp_path):
    pairs = [
        PreferencePair(
            f"p{i:03d}", f"What is fact {i}?", f"The fact {i} is blue.", f"The fact {i} is red."
        )
        for i in range(23)
    ]
    path = tmp_path / "train.jsonl"
    write_jsonl(path, pairs)
    return path


@pytest.fixture
def style():
    return load_style(STYLE_DIR / "sycophantic.yaml")


def check_rows(out, pairs_file, style, backend, n=None):
    rows = read_records(out, PreferencePair)
    originals = {p.prompt_id: p for p in read_records(pairs_file, PreferencePair)}
    assert len(rows) == (len(originals) if n is None else n)
    for r in rows:
        assert set(r.provenance) == PROVENANCE_KEYS
        assert r.provenance["backend"] == backend
        assert r.provenance["style"] == style.name
        assert r.provenance["style_prompt_hash"] == style.prompt_hash
        assert r.provenance["original_chosen"] == originals[r.prompt_id].chosen
        assert r.rejected == originals[r.prompt_id].rejected  # rejected kept, as in the paper
        assert r.chosen != originals[r.prompt_id].chosen
    return rows


# --- styles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STYLES)
def test_style_files_load_and_fill_placeholders(name):
    spec = load_style(STYLE_DIR / f"{name}.yaml")
    assert spec.name == name and len(spec.prompt_hash) == 16
    system, user = spec.messages("Why {answer}?", "Because {prompt}.")
    assert system["role"] == "system" and user["role"] == "user"
    assert "Why {answer}?" in user["content"] and "Because {prompt}." in user["content"]
    assert "{prompt}" not in spec.messages("q", "a")[1]["content"]


def test_style_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "loud.yaml"
    bad.write_text("name: loud\ndescription: d\nsystem_prompt: s\ninstructions: no placeholders\n")
    with pytest.raises(ValueError, match=r"loud.yaml.*placeholder"):
        load_style(bad)
    bad.write_text(
        "name: other\ndescription: d\nsystem_prompt: s\ninstructions: '{prompt}{answer}'"
    )
    with pytest.raises(ValueError, match="differs from the file name"):
        load_style(bad)
    bad.write_text("name: loud\nsystem_prompt: s\ninstructions: x\nextra: 1\n")
    with pytest.raises(
        ValueError, match=r"missing keys \['description'\].*unknown keys \['extra'\]"
    ):
        load_style(bad)


def test_prompt_hash_changes_with_the_prompt(style):
    other = StyleSpec(
        style.name, style.description, style.system_prompt + " More.", style.instructions
    )
    assert other.prompt_hash != style.prompt_hash


# --- rules backend, cache, resume ------------------------------------------------------------


def test_rules_backend_rows_and_provenance(tmp_path, pairs_file, style):
    out = tmp_path / "out.jsonl"
    card = rewrite_prefs(
        pairs_file,
        style,
        SynthConfig(batch_size=5),
        out,
        tmp_path / "c.jsonl",
        tmp_path / "card.json",
    )
    rows = check_rows(out, pairs_file, style, "rules")
    assert card["rows_in"] == card["rows_out"] == 23 and card["generated_this_run"] == 23
    assert json.loads((tmp_path / "card.json").read_text()) == card
    assert "The fact 0 is blue." in rows[0].chosen
    # a second run reads everything from the cache and writes the same file
    before = sha(out)
    card = rewrite_prefs(pairs_file, style, SynthConfig(batch_size=5), out, tmp_path / "c.jsonl")
    assert card["generated_this_run"] == 0 and card["from_cache"] == 23 and sha(out) == before


class Killed(Exception):
    pass


class CountingBackend:
    """Wraps a backend; counts generated rows per key; 'dies' after `die_after` calls."""

    def __init__(self, inner, die_after=None):
        self.inner, self.die_after, self.calls = inner, die_after, 0
        self.generated: dict[str, int] = {}

    def generate(self, requests):
        if self.die_after is not None and self.calls >= self.die_after:
            raise Killed
        self.calls += 1
        for r in requests:
            self.generated[r.key] = self.generated.get(r.key, 0) + 1
        return self.inner.generate(requests)


@pytest.mark.parametrize("kill_points", [[0], [1], [2], [4], [1, 1, 2]])
def test_resume_after_kill_gives_the_same_file(tmp_path, pairs_file, style, kill_points):
    cfg = SynthConfig(batch_size=5)  # 23 rows -> 5 batches
    clean = tmp_path / "clean.jsonl"
    rewrite_prefs(pairs_file, style, cfg, clean, tmp_path / "clean_cache.jsonl")
    out, cache = tmp_path / "out.jsonl", tmp_path / "cache.jsonl"
    counts: dict[str, int] = {}
    for die_after in kill_points:
        backend = CountingBackend(RulesBackend(cfg), die_after=die_after)
        with pytest.raises(Killed):
            rewrite_prefs(pairs_file, style, cfg, out, cache, backend=backend)
        assert not out.exists()  # no partial final file
        for k, n in backend.generated.items():
            counts[k] = counts.get(k, 0) + n
    backend = CountingBackend(RulesBackend(cfg))
    card = rewrite_prefs(pairs_file, style, cfg, out, cache, backend=backend)
    for k, n in backend.generated.items():
        counts[k] = counts.get(k, 0) + n
    assert sha(out) == sha(clean)
    assert len(counts) == 23 and set(counts.values()) == {1}  # every row generated exactly once
    assert card["generated_this_run"] + card["from_cache"] == 23
    assert card["cache_duplicate_lines"] == 0


def test_partial_cache_line_from_a_kill_is_discarded(tmp_path, pairs_file, style):
    cfg = SynthConfig(batch_size=5)
    cache = tmp_path / "cache.jsonl"
    with pytest.raises(Killed):
        rewrite_prefs(
            pairs_file,
            style,
            cfg,
            tmp_path / "o.jsonl",
            cache,
            backend=CountingBackend(RulesBackend(cfg), die_after=2),
        )
    with open(cache, "a") as f:
        f.write('{"key": "abc", "text": "half a li')
    card = rewrite_prefs(pairs_file, style, cfg, tmp_path / "o.jsonl", cache)
    assert card["cache_partial_line_discarded"] and card["from_cache"] == 10
    clean = tmp_path / "clean.jsonl"
    rewrite_prefs(pairs_file, style, cfg, clean, tmp_path / "c2.jsonl")
    assert sha(tmp_path / "o.jsonl") == sha(clean)


def test_corrupt_cache_line_names_file_and_line(tmp_path):
    cache = tmp_path / "cache.jsonl"
    cache.write_text('{"key": "a", "text": "t", "finish_reason": "stop"}\n{"key": 1}\n')
    with pytest.raises(DataError, match=r"cache.jsonl, line 2: corrupt cache line"):
        Cache(cache)


def test_cache_written_by_an_editor_with_a_byte_order_mark_is_read(tmp_path):
    cache = tmp_path / "cache.jsonl"
    line = '{"key": "a", "text": "t", "finish_reason": "stop"}\n'
    cache.write_bytes(b"\xef\xbb\xbf" + line.encode())
    assert Cache(cache).entries["a"].text == "t"


def test_changed_settings_regenerate(tmp_path, pairs_file, style):
    cache = tmp_path / "cache.jsonl"
    rewrite_prefs(pairs_file, style, SynthConfig(), tmp_path / "a.jsonl", cache)
    card = rewrite_prefs(
        pairs_file, style, SynthConfig(temperature=0.1), tmp_path / "b.jsonl", cache
    )
    assert card["generated_this_run"] == 23 and card["from_cache"] == 0


# --- quality filters ------------------------------------------------------------------------


class ScriptedBackend:
    def __init__(self, replies):
        self.replies = replies

    def generate(self, requests):
        return [
            self.replies.get(r.answer, Completion(f"Wow! {r.answer}", "stop")) for r in requests
        ]


def test_quality_filters_count_drops(tmp_path, pairs_file, style):
    replies = {
        "The fact 0 is blue.": Completion("   ", "stop"),
        "The fact 1 is blue.": Completion("Wow! The fact", "length"),
        "The fact 2 is blue.": Completion("I'm sorry, but I can't rewrite that.", "stop"),
        "The fact 3 is blue.": Completion("the fact 3  is blue.", "stop"),
        "The fact 4 is blue.": Completion("As an AI language model, I cannot.", "stop"),
    }
    out = tmp_path / "o.jsonl"
    cfg = SynthConfig(backend="openai", model="scripted")
    card = rewrite_prefs(
        pairs_file, style, cfg, out, tmp_path / "c.jsonl", backend=ScriptedBackend(replies)
    )
    assert card["drops"] == {"empty": 1, "truncated": 1, "refusal": 2, "verbatim_copy": 1}
    assert card["rows_out"] == 18 and card["drop_examples"]["refusal"]["prompt_id"] == "p002"
    check_rows(out, pairs_file, style, "openai", n=18)


def test_refusal_kept_when_the_original_refuses():
    assert quality_check("I cannot help with that.", Completion("I cannot, sadly!", "stop")) is None
    assert quality_check("Sure.", Completion("I cannot, sadly!", "stop")) == "refusal"


def test_too_many_drops_fail_loudly(tmp_path, pairs_file, style):
    class Empty:
        def generate(self, requests):
            return [Completion("", "stop") for _ in requests]

    with pytest.raises(DataError, match="max_drop_fraction"):
        rewrite_prefs(
            pairs_file,
            style,
            SynthConfig(backend="openai", model="m"),
            tmp_path / "o.jsonl",
            tmp_path / "c.jsonl",
            backend=Empty(),
        )
    assert not (tmp_path / "o.jsonl").exists()


# --- vllm: request construction without vllm or a GPU ---------------------------------------


def fake_vllm(log, tokenizer=None, poison=None):
    """vllm as far as the backend uses it. Like vLLM 0.33, `LLM.chat` renders each conversation
    with the model's chat template and rejects the whole call when one prompt is longer than
    `max_model_len`; a conversation containing `poison` fails the whole call as well."""
    mod = types.ModuleType("vllm")
    tokenizer = tokenizer or gemma_like_tokenizer()

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LLM:
        def __init__(self, **kw):
            log["engine"] = kw
            self.max_model_len = kw.get("max_model_len", 8192)

        def get_tokenizer(self):
            return tokenizer

        def chat(self, conversations, params, use_tqdm=True):
            log.setdefault("chats", []).append((conversations, [p.kw for p in params]))
            for conv in conversations:
                text = tokenizer.apply_chat_template(
                    conv, tokenize=False, add_generation_prompt=True
                )
                n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
                if n > self.max_model_len:
                    raise ValueError(
                        f"The decoder prompt (length {n}) is longer than the maximum model "
                        f"length of {self.max_model_len}."
                    )
                if poison and poison in text:
                    raise RuntimeError("engine error on one request")
            outs = []
            for conv, p in zip(conversations, params, strict=True):
                answer = conv[-1]["content"].split("Original answer:\n")[1]
                finish = "length" if "fact 7 " in answer else "stop"
                outs.append(
                    types.SimpleNamespace(
                        outputs=[
                            types.SimpleNamespace(
                                text=f"Brilliant! {answer} ({p.kw['seed']})", finish_reason=finish
                            )
                        ]
                    )
                )
            return outs

    mod.LLM, mod.SamplingParams = LLM, SamplingParams
    return mod


def long_pairs_file(tmp_path, long_rows=(4,), poison_rows=()):
    pairs = []
    for i in range(12):
        chosen = f"The fact {i} is blue."
        if i in long_rows:
            chosen = "The fact is blue. " * 1000  # far over the generator's context
        if i in poison_rows:
            chosen = f"The fact {i} is POISON."
        pairs.append(PreferencePair(f"p{i:03d}", f"What is fact {i}?", chosen, "No."))
    path = tmp_path / "long.jsonl"
    write_jsonl(path, pairs)
    return path


def vllm_cfg(**kw):
    settings = {"max_model_len": 4096}  # config/paper.yaml's
    return SynthConfig(
        backend="vllm",
        model="google/gemma-3-12b-it",
        batch_size=5,
        max_new_tokens=1024,
        vllm=VLLMSettings(**settings),
        **kw,
    )


def test_an_over_long_request_is_skipped_not_failing_its_batch(tmp_path, style, monkeypatch):
    log: dict = {}
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(log))
    pairs = long_pairs_file(tmp_path)
    card = rewrite_prefs(pairs, style, vllm_cfg(), tmp_path / "o.jsonl", tmp_path / "c.jsonl")
    assert card["skipped"] == {"not_in_policy_shard": 0, "over_context": 1}
    assert card["skip_examples"]["over_context"]["prompt_id"] == "p004"
    assert "max_model_len 4096" in card["skip_examples"]["over_context"]["why"]
    assert card["rows_out"] == 10 and card["drops"]["truncated"] == 1  # fact 7
    sent = [c[-1]["content"] for convs, _ in log["chats"] for c in convs]
    assert len(sent) == 11 and not any("blue. The fact is blue." in t for t in sent)


def test_a_row_that_breaks_the_engine_fails_alone(tmp_path, style, monkeypatch):
    """vLLM aborts the whole call for one bad request: the backend narrows it to that row."""
    log: dict = {}
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(log, poison="POISON"))
    pairs = long_pairs_file(tmp_path, long_rows=(), poison_rows=(2,))
    out, cache = tmp_path / "o.jsonl", tmp_path / "c.jsonl"
    card = rewrite_prefs(pairs, style, vllm_cfg(), out, cache)
    assert card["failed"] == {"error": 1} and card["rows_out"] == 10  # and fact 7 truncated
    assert "engine error" in card["drop_examples"]["failed_error"]["text"]
    assert len(Cache(cache).entries) == 11  # every row of the failed call but the bad one


def test_gemma3_template_folds_the_system_message_into_the_first_user_turn(style):
    tokenizer = gemma_like_tokenizer()
    messages = style.messages("What is fact 1?", "The fact 1 is blue.")
    text = render_chat(tokenizer, messages)
    assert text.startswith(f"<bos><start_of_turn>user\n{style.system_prompt}\n\n")
    assert "<start_of_turn>system" not in text and text.endswith("<start_of_turn>model\n")
    # a template that rejects a system message gets the same fold from us
    strict = gemma_like_tokenizer(NO_SYSTEM_CHAT_TEMPLATE)
    assert render_chat(strict, messages) == text
    assert prompt_tokens(strict, messages) == prompt_tokens(tokenizer, messages)


def test_vllm_requests_fit_a_template_without_a_system_role(tmp_path, style, monkeypatch):
    log: dict = {}
    tokenizer = gemma_like_tokenizer(NO_SYSTEM_CHAT_TEMPLATE)
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(log, tokenizer))
    pairs = long_pairs_file(tmp_path, long_rows=())
    card = rewrite_prefs(pairs, style, vllm_cfg(), tmp_path / "o.jsonl", tmp_path / "c.jsonl")
    assert card["rows_out"] == 11 and card["failed"] == {}
    first = log["chats"][0][0][0]
    assert [m["role"] for m in first] == ["user"] and first[0]["content"].startswith(
        style.system_prompt + "\n\n"
    )


def test_only_rows_of_the_policy_shard_are_rewritten(tmp_path, pairs_file, style):
    cfg = SynthConfig(batch_size=5)
    backend = CountingBackend(RulesBackend(cfg))
    keep = {f"p{i:03d}" for i in range(0, 23, 2)}
    out = tmp_path / "o.jsonl"
    card = rewrite_prefs(
        pairs_file, style, cfg, out, tmp_path / "c.jsonl", backend=backend, keep_ids=keep
    )
    assert card["skipped"]["not_in_policy_shard"] == 11 and card["rows_out"] == 12
    assert {r.prompt_id for r in read_records(out, PreferencePair)} == keep
    assert sum(backend.generated.values()) == 12


class StreamingBackend:
    """Delivers rows one by one; 'dies' (raises) after `die_after` rows in total."""

    def __init__(self, inner, die_after=None):
        self.inner, self.die_after, self.delivered = inner, die_after, 0
        self.requested: list[str] = []

    def stream(self, requests):
        self.requested += [r.key for r in requests]
        for i, c in enumerate(self.inner.generate(requests)):
            if self.die_after is not None and self.delivered >= self.die_after:
                raise Killed
            self.delivered += 1
            yield i, c


def test_a_kill_mid_batch_loses_no_answered_row(tmp_path, pairs_file, style):
    cfg = SynthConfig(batch_size=10)  # 23 rows -> batches of 10, 10, 3
    out, cache = tmp_path / "o.jsonl", tmp_path / "c.jsonl"
    dying = StreamingBackend(RulesBackend(cfg), die_after=13)  # 3 rows into the second batch
    with pytest.raises(Killed):
        rewrite_prefs(pairs_file, style, cfg, out, cache, backend=dying)
    assert len(Cache(cache).entries) == 13
    resumed = StreamingBackend(RulesBackend(cfg))
    card = rewrite_prefs(pairs_file, style, cfg, out, cache, backend=resumed)
    assert card["from_cache"] == 13 and card["generated_this_run"] == 10
    assert not set(resumed.requested) & set(Cache(cache).entries.keys() - set(resumed.requested))
    assert len(resumed.requested) == 10  # only the unanswered rows were requested again
    clean = tmp_path / "clean.jsonl"
    rewrite_prefs(pairs_file, style, cfg, clean, tmp_path / "c2.jsonl")
    assert sha(out) == sha(clean)


def test_vllm_request_construction(tmp_path, pairs_file, style, monkeypatch):
    log: dict = {}
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(log))
    cfg = SynthConfig(
        backend="vllm",
        model="google/gemma-3-12b-it",
        batch_size=10,
        seed=3,
        max_new_tokens=256,
        vllm=VLLMSettings(tensor_parallel_size=2, max_model_len=4096),
    )
    out = tmp_path / "o.jsonl"
    card = rewrite_prefs(pairs_file, style, cfg, out, tmp_path / "c.jsonl")
    assert log["engine"] == {
        "model": "google/gemma-3-12b-it",
        "tensor_parallel_size": 2,
        "max_model_len": 4096,
        "gpu_memory_utilization": 0.9,
        "dtype": "auto",
        "seed": 3,
    }
    assert [len(c) for c, _ in log["chats"]] == [10, 10, 3]  # one LLM.chat call per batch
    conversations, params = log["chats"][0]
    assert conversations[0] == style.messages("What is fact 0?", "The fact 0 is blue.")
    assert params[0] == {
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 256,
        "seed": params[0]["seed"],
    }
    seeds = [p["seed"] for _, ps in log["chats"] for p in ps]
    assert len(set(seeds)) == 23  # per-request seeds: a row's text does not depend on its batch
    assert card["drops"]["truncated"] == 1  # fact 7 finished with "length"
    rows = check_rows(out, pairs_file, style, "vllm", n=22)
    assert rows[0].provenance["generator_model"] == "google/gemma-3-12b-it"
    assert rows[0].provenance["sampling"] == {
        "temperature": 0.7,
        "top_p": 0.95,
        "max_new_tokens": 256,
    }


def test_vllm_missing_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    backend = VLLMBackend(SynthConfig(backend="vllm", model="m"))
    with pytest.raises(SynthError, match="envs/vllm.yaml"):
        backend.generate([])


def test_vllm_engine_kwargs_leave_max_model_len_unset():
    assert "max_model_len" not in vllm_engine_kwargs(SynthConfig(backend="vllm", model="m"))


# --- transformers: a tiny local chat model ----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory):
    import torch
    from transformers import Qwen2ForCausalLM

    from stylized_dpo.model import set_chat_eos, tiny_qwen2_config, train_tokenizer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    tok = train_tokenizer(["The fact is blue. What a brilliant question!"] * 20, 300, 512)
    model = Qwen2ForCausalLM(
        tiny_qwen2_config(tok, hidden_size=32, intermediate_size=64, num_hidden_layers=1)
    )
    set_chat_eos(model, tok)
    # a random model rarely emits <|im_end|>: make a third of the vocabulary end the turn, so
    # rows finish early (stop), some immediately (empty), and some run to the limit (length)
    model.generation_config.eos_token_id = list(range(0, len(tok), 3))
    path = tmp_path_factory.mktemp("tiny") / "model"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_transformers_backend_rows_provenance_and_resume(
    tmp_path, pairs_file, style, tiny_chat_model
):
    from stylized_dpo.synth.transformers_backend import TransformersBackend

    cfg = SynthConfig(
        backend="transformers",
        model=tiny_chat_model,
        batch_size=8,
        max_new_tokens=6,
        max_drop_fraction=1.0,
    )
    out = tmp_path / "o.jsonl"
    card = rewrite_prefs(pairs_file, style, cfg, out, tmp_path / "c.jsonl")
    assert card["rows_out"] + card["drops_total"] == 23 and card["rows_out"] > 0
    check_rows(out, pairs_file, style, "transformers", n=card["rows_out"])
    # killed after one batch, then resumed: the same file (batches are fixed and seeded)
    with pytest.raises(Killed):
        rewrite_prefs(
            pairs_file,
            style,
            cfg,
            tmp_path / "r.jsonl",
            tmp_path / "r.jsonl.cache",
            backend=CountingBackend(TransformersBackend(cfg), die_after=1),
        )
    card = rewrite_prefs(pairs_file, style, cfg, tmp_path / "r.jsonl", tmp_path / "r.jsonl.cache")
    assert card["from_cache"] == 8 and sha(tmp_path / "r.jsonl") == sha(out)


def test_config_errors():
    with pytest.raises(ValueError, match="backend"):
        SynthConfig(backend="gpt")
    with pytest.raises(ValueError, match="synth.model"):
        SynthConfig(backend="vllm")
    with pytest.raises(ValueError, match="unknown synth key"):
        SynthConfig.from_config({"backend": "rules", "temprature": 1.0}, seed=0)
    cfg = SynthConfig.from_config(
        {"backend": "vllm", "model": "m", "vllm": {"tensor_parallel_size": 4}}, seed=5
    )
    assert cfg.vllm.tensor_parallel_size == 4 and cfg.seed == 5
