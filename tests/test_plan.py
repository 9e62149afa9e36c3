"""The plan's arithmetic (stylized_dpo.plan) on hand-computed cases, and `snakemake plan`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stylized_dpo.plan import build_plan, format_plan
from stylized_dpo.plan_costs import (
    Lengths,
    Throughput,
    api_usd,
    card_lengths,
    dpo_tokens,
    gpu_hours,
    helm_requests,
    training_examples,
)

ROOT = Path(__file__).resolve().parents[1]


def test_the_arithmetic_of_each_figure():
    assert training_examples(rows=100, epochs=2, max_steps=None, batch=32) == 200
    assert training_examples(rows=100, epochs=2, max_steps=10, batch=32) == 320
    pair = Lengths(rows=1, prompt=10, answer=5, source="x")
    assert dpo_tokens(pair, prefix_sharing=True) == 20  # 10 + 5 + 5
    assert dpo_tokens(pair, prefix_sharing=False) == 30  # (10 + 5) + (10 + 5)
    assert gpu_hours(180_000_000, Throughput(50_000, "estimate")) == pytest.approx(1.0)
    assert gpu_hours(1, None) is None
    assert api_usd(1e6, 2e6, 0.15, 0.60) == pytest.approx(0.15 + 1.20)
    assert api_usd(1e6, 2e6, None, 0.60) is None
    helm = {"max_eval_instances": 1000, "num_train_trials": 3, "scenarios": ["boolq", "quac"]}
    # per scenario: 1000 instances x 3 trials x (original + 4 canonical perturbations)
    assert helm_requests({**helm, "data_augmentation": "canonical"}, models=6) == 6 * 2 * 15_000
    assert helm_requests({**helm, "data_augmentation": "robustness"}, models=1) == 2 * 6_000
    # HellaSwag scores each of its 4 endings as a request
    hellaswag = {**helm, "scenarios": ["hellaswag"], "data_augmentation": "canonical"}
    assert helm_requests(hellaswag, models=1) == 4 * 15_000


def write_card(path: Path, rows: int, prompt: float, **answers: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    card = {"rows_out": rows, "prompt_tokens": {"mean": prompt, "p50": 1}}
    card |= {f"{name}_tokens": {"mean": mean} for name, mean in answers.items()}
    path.write_text(json.dumps(card))


def test_card_lengths_average_the_answer_columns(tmp_path):
    write_card(tmp_path / "c.json", rows=10, prompt=20, chosen=30, rejected=10)
    lengths = card_lengths(tmp_path / "c.json", "chosen_tokens+rejected_tokens")
    assert (lengths.rows, lengths.prompt, lengths.answer) == (10, 20, 20)
    assert not lengths.estimated
    assert card_lengths(tmp_path / "missing.json", "chosen_tokens") is None


CONFIG = {
    "data": {
        "sft": {"max_rows": None},
        "prefs": {"max_rows": None},
        "eval_prompts": {"n": 10},
    },
    "sft": {"epochs": 1, "max_steps": None, "batch_size": 2, "grad_accum": 2},
    "dpo": {
        "batch_size": 2,
        "grad_accum": 2,
        "prefix_sharing": True,
        "ultrafeedback": {"epochs": 2, "max_steps": None},
        "styles": {"epochs": 1, "max_steps": 5},
        "per_dataset": {},
    },
    "synth": {"backend": "vllm"},
    "generation": {"backend": "vllm", "max_new_tokens": 64},
    "helm": {"device": "cpu"},
    "judge": {
        "backend": "openai",
        "max_tokens": 100,
        "price_input_per_mtok": 1.0,
        "price_output_per_mtok": 2.0,
    },
    "win_rates": {"backend": "reference"},
    "compute": {
        "plan": {
            "gpu_type": "H100",
            "estimates": {
                "sft_rows": 1000,
                "pref_rows": {"train": 100, "test": 10},
                "prompt_tokens": 10,
                "answer_tokens": 20,
                "kept_fraction": 0.5,
            },
        },
        "throughput": {
            "H100": {
                "sft": {"per_s": 100_000, "source": "measured: test"},
                "dpo": {"per_s": 1_000, "source": "estimate"},
                "style_rewrite": {"per_s": 10, "source": "estimate"},
            }
        },
    },
}
JOB_GPUS = {"sft": 2, "dpo": 1, "style_rewrite": 1, "generate": 1, "helm_run": 0}


def test_a_plan_from_shard_cards_matches_the_hand_computed_figures(tmp_path):
    write_card(tmp_path / "data/sft/tokens/train.json", rows=1000, prompt=50, completion=150)
    for split, rows, prompt in (("train", 100, 10), ("test", 10, 12)):
        card = tmp_path / f"data/prefs/ultrafeedback/tokens/{split}.json"
        write_card(card, rows=rows, prompt=prompt, chosen=30, rejected=10)
    stages, gpu_type = build_plan(
        CONFIG,
        models=["base", "sft", "dpo-ultrafeedback", "dpo-sycophantic"],
        pref_datasets=["ultrafeedback", "sycophantic"],
        styles=["sycophantic"],
        judge_template="x" * 400,  # 100 API tokens at 4 characters each
        job_gpus=JOB_GPUS,
        results=tmp_path,
    )
    by = {s.stage: s for s in stages}
    assert gpu_type == "H100" and list(by) == [
        "sft",
        "reference_logps",
        "dpo-ultrafeedback",
        "dpo-sycophantic",
        "style_rewrite",
        "generate",
        "judge",
    ]
    # SFT: 1000 rows x (50 + 150) tokens, 1 epoch, at 100,000 tok/s, on 2 GPUs
    assert by["sft"].input_tokens == 200_000
    assert by["sft"].gpu_hours == pytest.approx(2 / 3600)
    assert by["sft"].wall_hours_per_job == pytest.approx(1 / 3600)
    assert "measured: test" in by["sft"].throughput_from
    # a pair: prompt once + chosen + rejected = 10 + 2 x 20 (train), 12 + 40 (test)
    # reference log-probs: 2 datasets x (100 x 50 + 10 x 52)
    assert by["reference_logps"].input_tokens == 2 * (100 * 50 + 10 * 52)
    assert by["reference_logps"].gpu_hours is None  # no throughput given for it
    # DPO: ultrafeedback 2 epochs x 100 pairs; the style 5 steps x 4 pairs; 50 tokens each
    assert by["dpo-ultrafeedback"].input_tokens == 200 * 50
    assert by["dpo-sycophantic"].input_tokens == 20 * 50
    assert by["dpo-sycophantic"].gpu_hours == pytest.approx(1_000 / 1_000 / 3600)
    # rewriting: each pair's answer once (the chosen/rejected mean, 20 tokens), both splits
    assert by["style_rewrite"].output_tokens == (100 + 10) * 20
    assert by["style_rewrite"].gpu_hours == pytest.approx(2_200 / 10 / 3600)
    # generation: 4 models x 10 prompts x 64 new tokens at most
    assert by["generate"].output_tokens == 4 * 10 * 64
    # judge: 40 calls x (100 template + 12 prompt + 64 answer) in, 40 x 100 out
    assert (by["judge"].input_tokens, by["judge"].output_tokens) == (40 * 176, 4_000)
    assert by["judge"].api_usd == pytest.approx(40 * 176 * 1.0 / 1e6 + 4_000 * 2.0 / 1e6)
    text = format_plan(stages, gpu_type)
    total = sum(s.gpu_hours or 0 for s in stages)
    assert f"total: {total:,.1f} GPU hours, ${by['judge'].api_usd:,.2f} API" in text
    assert "no throughput for H100: reference_logps, generate" in text
    assert "over its time limit" not in text
    # style rewriting: 2,200 tokens at 10/s = 220 s over 2 jobs, 1.83 minutes each
    text = format_plan(stages, gpu_type, {"style_rewrite": 1, "sft": 60})
    assert "over its time limit: style_rewrite needs ~0.0 h per job, " in text
    assert "allows 1 min" in text and "sft needs" not in text


def test_without_cards_the_plan_uses_the_config_estimates_and_says_so(tmp_path):
    stages, _ = build_plan(
        CONFIG,
        models=["base", "dpo-ultrafeedback"],
        pref_datasets=["ultrafeedback"],
        styles=[],
        judge_template="",
        job_gpus=JOB_GPUS,
        results=tmp_path,
    )
    by = {s.stage: s for s in stages}
    # SFT: 1000 rows x (10 + 20); the pair estimates keep half of 100 train rows
    assert by["sft"].input_tokens == 1000 * 30
    assert by["sft"].counts_from.startswith("estimate: 1,000 rows")
    assert by["dpo-ultrafeedback"].input_tokens == 2 * 50 * (10 + 2 * 20)
    assert by["dpo-ultrafeedback"].counts_from == "100 pairs; estimate"


def test_snakemake_plan_prints_the_papers_plan_without_running_any_other_job(tmp_path):
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("snakemake")), "plan", "--cores", "1"]
        + ["--configfile", "config/paper.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env=os.environ | {"PYTHONPATH": str(ROOT / "src")},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "1 of 1 steps (100%) done" in out  # plan alone
    for stage in ("sft", "reference_logps", "dpo-ultrafeedback", "dpo-persuasive", "judge"):
        assert f"\n{stage} " in out
    assert "total: " in out and "GPU hours" in out


@pytest.mark.parametrize("overlay", [None, "config/paper.yaml"])
def test_the_price_keys_the_plan_reads_are_win_rate_settings(overlay):
    """The plan's reward prices live in `win_rates`, which the win-rate job also reads."""
    import yaml

    from stylized_dpo.evals.winrate import WinRateConfig

    section = yaml.safe_load((ROOT / "config/config.yaml").read_text())["win_rates"]
    if overlay:
        section |= yaml.safe_load((ROOT / overlay).read_text())["win_rates"]
    config = WinRateConfig.from_dict(section)
    assert config.price_input_per_mtok is None and config.price_output_per_mtok is None


def test_several_seeds_repeat_every_stage_but_the_shared_rewrites(tmp_path):
    def plan(seeds: list[int]) -> dict:
        cfg = {
            **CONFIG,
            "seeds": seeds,
            "base_model": {"source": "hub"},
            "helm": {"device": "cuda", "requests_per_s": 2.0},
        }
        stages, _ = build_plan(
            cfg,
            models=["base", "sft", "dpo-ultrafeedback"],
            pref_datasets=["ultrafeedback"],
            styles=["sycophantic"],
            judge_template="x" * 400,
            job_gpus={**JOB_GPUS, "helm_run": 1},
            results=tmp_path,
        )
        return {s.stage: s for s in stages}

    one, three = plan([0]), plan([0, 1, 2])
    assert list(one) == list(three)
    for name in ("sft", "reference_logps", "dpo-ultrafeedback", "generate", "judge"):
        assert three[name].jobs == 3 * one[name].jobs
        assert three[name].input_tokens == pytest.approx(3 * one[name].input_tokens)
        assert three[name].counts_from == one[name].counts_from + "; 3 seeds"
    assert three["sft"].gpu_hours == pytest.approx(3 * one["sft"].gpu_hours)
    assert three["judge"].api_usd == pytest.approx(3 * one["judge"].api_usd)
    assert three["style_rewrite"] == one["style_rewrite"]  # the datasets are shared
    # the hub base model's HELM run is one for every seed: 3 models x 3 seeds - 2
    assert one["helm_run"].jobs == 3 and three["helm_run"].jobs == 7
    assert three["helm_run"].units == pytest.approx(one["helm_run"].units * 7 / 3)
