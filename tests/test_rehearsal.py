"""The rehearsal's stand-ins (stylized_dpo.rehearsal): each must be what the paper's run reads,
resolved through the same library calls, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stylized_dpo.api import ApiConfig
from stylized_dpo.evals.judge import parse_judge_content
from stylized_dpo.evals.rewards import parse_reward_content, rewards_api
from stylized_dpo.evals.winrate import WinRateConfig
from stylized_dpo.rehearsal import datasets, hub, qwen, report, run, servers

REPO = Path(__file__).resolve().parents[1]


def offline(hf_home: Path, code: str) -> str:
    """Run `code` in a fresh interpreter with the hub cache at `hf_home`, offline."""
    env = dict(
        os.environ,
        HF_HOME=str(hf_home),
        HF_DATASETS_CACHE=str(hf_home / "datasets"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        PYTHONPATH=str(REPO / "src"),
        OMP_NUM_THREADS="1",
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_qwen_tokenizer_has_qwen25_ids_and_base_template():
    tok = qwen.tokenizer()
    assert len(tok) == 151665
    assert tok("Hello world")["input_ids"] == [9707, 1879]
    assert tok.convert_tokens_to_ids("<|im_end|>") == 151645
    assert tok.convert_tokens_to_ids("<|file_sep|>") == 151664
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    with_system = tok.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        tokenize=False,
    )
    assert with_system.count("<|im_start|>system") == 1 and "helpful" not in with_system
    # the non-special added tokens stay in decoded text, as in Qwen's tokenizer
    assert tok.decode([151657], skip_special_tokens=True) == "<tool_call>"


def test_snapshot_resolves_offline_by_repo_name(tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    files = tmp_path / "files"
    Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=64,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    ).save_pretrained(files)
    snapshot = hub.write_snapshot(tmp_path / "hf", "Org/tiny", files)
    repo = hub.repo_folder(tmp_path / "hf", "Org/tiny")
    assert (repo / "refs" / "main").read_text() == snapshot.name
    assert (snapshot / "config.json").is_symlink()
    out = offline(
        tmp_path / "hf",
        "from transformers import AutoModelForCausalLM\n"
        "m = AutoModelForCausalLM.from_pretrained('Org/tiny')\n"
        "print(m.config.hidden_size)",
    )
    assert out.strip().splitlines()[-1] == "16"


def test_generator_ends_answers_at_its_stop_probability(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    snapshot = hub.write_generator(tmp_path / "hf", ["a few words of text"] * 10, seed=0)
    tok = AutoTokenizer.from_pretrained(snapshot)
    model = AutoModelForCausalLM.from_pretrained(snapshot)
    msgs = [{"role": "system", "content": "Rewrite."}, {"role": "user", "content": "The sky."}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    # Gemma 3's template: no system turn, the system message opens the first user turn
    assert (
        text
        == "<bos><start_of_turn>user\nRewrite.\n\nThe sky.<end_of_turn>\n<start_of_turn>model\n"
    )
    batch = tok([text] * 64, return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(0)
    out = model.generate(
        **batch,
        max_new_tokens=100,
        do_sample=True,
        temperature=0.7,
        top_p=0.95,
        top_k=0,
        pad_token_id=tok.pad_token_id,
    )
    eos = set(model.generation_config.eos_token_id)
    new = out[:, batch["input_ids"].shape[1] :].tolist()
    lengths = [next((i for i, t in enumerate(r) if t in eos), None) for r in new]
    ended = [n for n in lengths if n is not None]
    assert len(ended) >= 62  # P(no stop in 100 steps) = 0.92**100 ~ 2e-4
    mean = sum(ended) / len(ended)
    assert 5 < mean < 25, lengths  # geometric, mean (1 - p) / p = 11.5 at p = 0.08


def test_datasets_load_offline_with_the_hub_features(tmp_path):
    sizes = {"sft_train": 20, "sft_test": 5, "prefs_train": 20, "prefs_test": 6}
    datasets.write_datasets(tmp_path / "files", tmp_path / "hf" / "datasets", sizes)
    out = offline(
        tmp_path / "hf",
        "import json, datasets\n"
        "uf = {s: datasets.load_dataset('HuggingFaceH4/ultrafeedback_binarized', split=s)\n"
        "      for s in ['train_prefs', 'test_prefs', 'train_sft', 'test_gen']}\n"
        "st = datasets.load_dataset('HuggingFaceTB/smol-smoltalk', split='train')\n"
        "uf = {s: [d.num_rows, sorted(d.column_names)] for s, d in uf.items()}\n"
        "st = [st.num_rows, sorted(st.column_names), st[0]['messages'][0]['role']]\n"
        "print(json.dumps({'uf': uf, 'st': st}))",
    )
    got = json.loads(out.strip().splitlines()[-1])
    columns = sorted(
        ["prompt", "prompt_id", "chosen", "rejected", "messages", "score_chosen", "score_rejected"]
    )
    assert got["uf"]["train_prefs"] == [20, columns]
    assert got["uf"]["test_prefs"] == [6, columns]
    assert got["uf"]["test_gen"][0] == 8
    assert got["st"][:2] == [20, ["messages", "source"]]
    assert (
        tmp_path / "files" / datasets.ULTRAFEEDBACK / "data" / "train_prefs-00000-of-00001.parquet"
    ).exists()


def test_rows_cover_the_hub_kinds_and_lengths():
    tok = qwen.tokenizer()
    rows = datasets.ultrafeedback_rows(45, 0, "train_prefs")
    prompts = [
        tok.apply_chat_template([r["chosen"][0]], tokenize=False, add_generation_prompt=True)
        for r in rows
    ]
    prompt_tokens = [len(tok(p)["input_ids"]) for p in prompts]
    answer_tokens = [len(tok(r["chosen"][1]["content"])["input_ids"]) for r in rows]
    assert max(prompt_tokens) > 4096 and max(answer_tokens) > 1024
    assert sum(n > 256 for n in prompt_tokens) > 2
    assert any(r["chosen"] == r["rejected"] for r in rows)  # dropped by the loader
    assert any(r["score_chosen"] == r["score_rejected"] for r in rows)
    chats = datasets.smoltalk_rows(45, 0, "train")
    assert any(c["messages"][0]["role"] == "system" for c in chats)
    assert any(sum(m["role"] == "user" for m in c["messages"]) > 1 for c in chats)
    assert any(
        any("\u4e00" <= ch <= "\u9fff" for m in c["messages"] for ch in m["content"]) for c in chats
    )


def test_judge_and_reward_servers_answer_in_their_formats_with_faults(tmp_path):
    import openai

    with servers.FaultyAPI("judge", 0, "k", slow_s=1.5) as judge:
        client = openai.OpenAI(base_url=judge.url, api_key="k", max_retries=0, timeout=1.0)
        prompt = (
            "Prompt:\n\nhi\n\nResponse:\n\nan answer of a few words\n\nPlease rate the response"
        )
        kinds = []
        for i in range(60):
            body = [{"role": "user", "content": prompt + " " * i}]
            try:
                r = client.chat.completions.create(model="gpt-4o-mini", messages=body)
            except openai.RateLimitError:
                kinds.append("429")
            except openai.InternalServerError:
                kinds.append("500")
            except openai.APITimeoutError:
                kinds.append("timeout")
            else:
                try:
                    parse_judge_content(r.choices[0].message.content)
                    kinds.append("ok")
                except ValueError:
                    kinds.append("invalid")
        assert {"ok", "429", "500", "invalid"} <= set(kinds)
        assert judge.counts["requests"] == 60
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(
                base_url=judge.url, api_key="wrong", max_retries=0
            ).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    with servers.FaultyAPI("reward", 0, "k", slow_s=1.5) as reward:
        os.environ["REHEARSAL_TEST_KEY"] = "k"
        cfg = WinRateConfig.from_dict(
            {
                "backend": "reward_api",
                "model": "nvidia/llama-3.1-nemotron-70b-reward",
                "base_url": reward.url,
                "api_key_env": "REHEARSAL_TEST_KEY",
                "timeout_s": 1.0,
                "backoff_base_s": 0.01,
                "backoff_max_s": 0.05,
                "cache_dir": str(tmp_path / "c"),
            }
        )
        pairs = [(f"question {i}", f"answer number {i} with words") for i in range(40)]
        values, stats = rewards_api(pairs, cfg)
        assert all(v is not None for v in values)
        assert reward.counts["requests"] > 40  # faults were served and retried
        assert parse_reward_content(f"reward:{servers.reward_value('x y')}", "reward") < 0
    assert isinstance(ApiConfig(), ApiConfig)


def test_parse_jobs_reads_snakemake_job_blocks():
    log = """
localrule sft:
    input: results/models/base
    output: results/models/sft, results/train/sft/metrics.jsonl
    log: logs/sft/sft.log
    jobid: 9
    benchmark: results/benchmarks/sft.tsv
    wildcards: sft_model=sft
    resources: tmpdir=/tmp, mem_mb=8000, mem_mib=7630, gpu=1, gpu_mem_mb=80000, runtime=720

localrule all:
    jobid: 0
"""
    (job,) = report.parse_jobs(log)
    assert (job.rule, job.jobid, job.log, job.mem_mb) == ("sft", "9", "logs/sft/sft.log", 8000)
    assert job.wildcards == "sft_model=sft"


def _leaves(value, prefix=""):
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _leaves(sub, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), value


# What the overlay may change: sizes, the device, and the two vLLM backends (no GPU here).
OVERLAY_KEYS = {
    "threads",
    "data.eval_prompts.n",
    "synth.backend",
    "synth.batch_size",
    "synth.transformers.device",
    "synth.transformers.dtype",
    "generation.backend",
    "generation.max_new_tokens",
    "generation.batch_size",
    "generation.device",
    "generation.dtype",
    "win_rates.n_prompts",
    "helm.max_eval_instances",
    "helm.num_train_trials",
    "helm.max_output_tokens.natural_qa",
    "helm.max_output_tokens.quac",
    "helm.num_threads",
    "helm.batch_size",
    "helm.requests_per_s",
    "helm.device",
    "helm.executable_dir",
    "helm.data",  # HELM's files pre-placed (no download offline), the rest as on the hub
    "helm.data_path",
}
OVERLAY_PREFIXES = ("sft.", "dpo.", "judge.", "win_rates.")
SIZE_WORDS = ("batch_size", "grad_accum", "max_steps", "eval_every", "checkpoint_every", "device")
ENDPOINT_WORDS = ("base_url", "timeout_s", "backoff_base_s", "backoff_max_s")


def test_overlay_changes_only_sizes_devices_and_endpoints():
    import yaml

    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    overlay = yaml.safe_load((REPO / "config" / "rehearsal.yaml").read_text())
    for key, value in _leaves(overlay):
        if key in OVERLAY_KEYS:
            continue
        assert key.startswith(OVERLAY_PREFIXES), key
        leaf = key.rsplit(".", 1)[-1]
        if key.startswith(("judge.", "win_rates.")):
            assert leaf in ENDPOINT_WORDS, key
            if leaf == "base_url":
                assert value.startswith("http://127.0.0.1:"), value
        else:
            assert leaf in SIZE_WORDS, key
    assert overlay["synth"]["backend"] == overlay["generation"]["backend"] == "transformers"
    assert "model" not in overlay["synth"]  # the paper's generator name, resolved offline
    assert "backend" not in overlay["judge"] and "backend" not in overlay["win_rates"]
    assert paper["judge"]["backend"] == "openai" and paper["win_rates"]["backend"] == "reward_api"
    # HELM: the paper's run entries, on local files in HELM's download layout.
    assert overlay["helm"]["data"] == "local"
    assert not {"scenarios", "mmlu_subjects", "data_augmentation", "natural_qa_mode"} & set(
        overlay["helm"]
    )


def test_rehearsal_dag_is_the_papers_with_helm_on_local_files(tmp_path):
    import yaml

    from stylized_dpo.world.helm_local_data import write_helm_local_data

    # The rehearsal's working directory: the config linked, HELM's files written at data_path.
    (tmp_path / "config").symlink_to(REPO / "config")
    helm = yaml.safe_load((REPO / "config" / "rehearsal.yaml").read_text())["helm"]
    write_helm_local_data(tmp_path / helm["data_path"], helm["max_eval_instances"], seed=0)
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "snakemake"),
            "-n",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--configfile",
            str(REPO / "config" / "paper.yaml"),
            str(REPO / "config" / "rehearsal.yaml"),
            "--",
            *run.TARGETS,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = dict(
        line.split()
        for line in proc.stdout.split("Job stats:")[1].splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit()
    )
    assert jobs["fetch_base_model"] == "1" and jobs["dpo"] == "4"
    assert jobs["style_rewrite"] == "6" and jobs["reference_logps"] == "8"
    assert jobs["judge"] == "6" and jobs["win_rates"] == "1"
    # HELM on every model of the paper's suite, from the pre-placed files (not the world's).
    assert jobs["helm_run"] == "6" and jobs["helm_summarize"] == "1"
    assert "helm_data" not in jobs and "world" not in jobs
    for target in ("table4", "table8", "figure_helm", "helm_ci", "significance", "reproduction"):
        assert jobs[target] == "1", target
