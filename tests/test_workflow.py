"""The workflow as a whole: lint, formatting, config validation, DAGs of both configs, and a
small end-to-end run of the whole study (slow)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile")]
TEST_CONFIG = REPO / ".test" / "config.yaml"


def snakemake(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [*SNAKEMAKE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=3000
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def planned_jobs(output: str) -> dict[str, int]:
    """Parse the job-count table that a dry run prints."""
    counts: dict[str, int] = {}
    table = output.split("Job stats:")[1] if "Job stats:" in output else ""
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def test_lint():
    proc = snakemake("--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakefmt():
    files = [str(REPO / "Snakefile"), *map(str, sorted((REPO / "rules").glob("*.smk")))]
    proc = subprocess.run(
        [str(BIN / "snakefmt"), "--check", *files], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_default_dag_has_every_stage():
    jobs = planned_jobs(snakemake("-n", "--forceall").stdout)
    n_styles = 3
    assert jobs["world"] == 1
    assert jobs["style_rewrite"] == 2 * n_styles
    assert jobs["dpo"] == 1 + n_styles
    assert jobs["reference_logps"] == 2 * (1 + n_styles)
    assert jobs["tokenize_prefs"] == 2 * (1 + n_styles) and jobs["tokenize_sft"] == 2
    assert jobs["generate"] == 2 + 1 + n_styles
    assert jobs["helm_run"] == 2 + 1 + n_styles


def test_paper_dag_dry_runs():
    proc = snakemake("-n", "--forceall", "--configfile", str(REPO / "config" / "paper.yaml"))
    jobs = planned_jobs(proc.stdout)
    assert "world" not in jobs and "pretrain_base" not in jobs
    assert jobs["fetch_base_model"] == 1
    assert jobs["dpo"] == 4 and jobs["style_rewrite"] == 6


def test_adding_a_style_adds_its_branch(tmp_path):
    shutil.copytree(REPO / "config", tmp_path / "config")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["styles"] = config["styles"] + ["formal"]
    # The rules backend knows no "formal" phrases: an LLM backend rewrites a new style.
    config["synth"].update(backend="openai", model="some-chat-model")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = snakemake("-n", "--configfile", str(path), cwd=tmp_path, check=False)
    assert "has no prompt file config/prompts/styles/formal.yaml" in proc.stdout + proc.stderr

    style = yaml.safe_load((REPO / "config/prompts/styles/authoritative.yaml").read_text())
    style["name"] = "formal"
    (tmp_path / "config/prompts/styles/formal.yaml").write_text(yaml.safe_dump(style))
    jobs = planned_jobs(snakemake("-n", "--configfile", str(path), cwd=tmp_path).stdout)
    assert jobs["dpo"] == 5 and jobs["style_rewrite"] == 2 * 5 - 2  # ultrafeedback: no rewrite
    assert jobs["generate"] == 7 and jobs["helm_run"] == 7


def planned_job_files(output: str) -> list[tuple[str, str, str, str]]:
    """(rule, input, output, log) of every job a dry run prints, sorted."""
    jobs, current = [], None
    for line in output.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line):
            current = {"rule": m.group(1)}
            jobs.append(current)
        elif current is not None and (m := re.match(r"^    (input|output|log): (.*)$", line)):
            current[m.group(1)] = m.group(2)
    return sorted(
        (j["rule"], j.get("input", ""), j.get("output", ""), j.get("log", "")) for j in jobs
    )


SEEDS_OVERLAY = REPO / ".test" / "seeds.yaml"
# Built once from the global seed (the world, the data, the rewrites, HELM's files, the audit
# of the scorers); everything a model feeds is per seed, and the summary across seeds is one.
SHARED_RULES = {
    "world", "prepare_sft", "prepare_prefs", "tokenizer", "fetch_base_model", "tokenize_sft",
    "tokenize_prefs", "style_rewrite", "style_table", "eval_prompts", "helm_data", "style_bias",
    "style_bias_report",
}  # fmt: skip
# Only with more than one seed, once: every table value, Tables 3-8, the headline numbers, the
# comparisons and the claims across seeds.
ACROSS_SEEDS = {
    "seeds_summary": ["results/tables/seeds_summary.csv", "results/tables/seeds_summary.md"],
    **{
        f"table{n}_seeds": [
            f"results/tables/table{n}_seeds.csv",
            f"results/tables/table{n}_seeds.tex",
            f"results/tables/table{n}_seeds.md",
            f"results/figures/table{n}_seeds.pdf",
        ]
        for n in range(3, 9)
    },
    "figure_seeds": ["results/figures/seeds.pdf", "results/figures/seeds.png"],
    "significance_seeds": [
        "results/tables/significance_seeds.csv",
        "results/tables/significance_seeds.md",
        "results/tables/significance_seeds.tex",
        "results/tables/claims_seeds.csv",
        "results/tables/claims_seeds.md",
        "results/figures/claims_seeds.pdf",
        "results/figures/claims_seeds.png",
    ],
}


@pytest.mark.parametrize("paper", [False, True], ids=["default", "paper"])
def test_two_seeds_repeat_the_seeded_branch_only(paper):
    """With seeds [0, 1], the first seed's jobs are exactly the one-seed DAG's (same paths), the
    shared jobs appear once, every other job once more under results/seeds/1/ with its log under
    logs/seeds/1/, and the summary across seeds reads every seed's tables."""
    configs = ["--configfile", str(REPO / "config" / "paper.yaml")] if paper else []
    one = planned_job_files(snakemake("-n", "--forceall", *configs).stdout)
    configs = ["--configfile", str(REPO / "config" / ("paper.yaml" if paper else "config.yaml"))]
    two_out = snakemake("-n", "--forceall", *configs, str(SEEDS_OVERLAY)).stdout
    two = planned_job_files(two_out)
    summary = [j for j in two if j[0] == "seeds_summary"]
    assert len(summary) == 1 and summary[0][2] == (
        "results/tables/seeds_summary.csv, results/tables/seeds_summary.md"
    )
    for n in (3, 4, 8):
        assert f"results/tables/table{n}.csv" in summary[0][1]
        assert f"results/seeds/1/tables/table{n}.csv" in summary[0][1]
    assert "results/seeds/1/judge/win_rates.csv" in summary[0][1]
    across = {j[0]: j for j in two if j[0] in ACROSS_SEEDS}
    assert {r: j[2].split(", ") for r, j in across.items()} == ACROSS_SEEDS  # each once
    assert not ACROSS_SEEDS.keys() & {j[0] for j in one}
    statistics = set(across["significance_seeds"][1].split(", "))
    assert statistics == {
        "results/tables/significance.csv", "results/seeds/1/tables/significance.csv",
        "results/tables/claims.csv", "results/seeds/1/tables/claims.csv",
    }  # fmt: skip
    assert set(across["table5_seeds"][1].split(", ")) == {
        "results/helm/summary.csv", "results/seeds/1/helm/summary.csv",
    }  # fmt: skip
    all_one, all_two = (next(j[1].split(", ") for j in dag if j[0] == "all") for dag in (one, two))
    targets = [path for outputs in ACROSS_SEEDS.values() for path in outputs]
    assert set(targets) <= set(all_two)
    assert not set(targets) & set(all_one)
    second = [j for j in two if "seeds/1/" in j[2]]
    first = [j for j in two if j not in second and j[0] not in ("all", *ACROSS_SEEDS)]
    assert first == [j for j in one if j[0] != "all"]
    assert not any("seeds/" in j[1] + j[2] + j[3] for j in one)

    seeded = [j for j in first if j[0] not in SHARED_RULES]
    assert {j[0] for j in second} == {j[0] for j in seeded}
    assert not SHARED_RULES & {j[0] for j in second}
    # a hub base model is fetched once and goes through HELM once
    assert len(second) == len(seeded) - (1 if paper else 0)
    for _, _, output, log in second:
        assert all(p.startswith("results/seeds/1/") for p in output.split(", ")), output
        assert log.startswith("logs/seeds/1/"), log
    mirrored = {
        (r, o.replace("seeds/1/", ""), lg.replace("seeds/1/", "")) for r, _, o, lg in second
    }
    assert mirrored <= {(r, o, lg) for r, _, o, lg in seeded}
    by_output = {j[2].split(", ")[0]: j for j in second}
    sft = by_output["results/seeds/1/models/sft"]
    assert sft[1].startswith("results/seeds/1/models/base" if not paper else "results/models/base")
    assert "results/data/sft/tokens/train.parquet" in sft[1]  # the shared shards
    dpo = by_output["results/seeds/1/models/dpo-sycophantic"]
    assert "results/seeds/1/data/prefs/sycophantic/ref_logps_train.parquet" in dpo[1]
    assert "results/data/prefs/sycophantic/tokens/train.parquet" in dpo[1]
    summarize = by_output["results/seeds/1/helm/summary.csv"]
    base_run = "results/helm/runs/base" if paper else "results/seeds/1/helm/runs/base"
    assert base_run in summarize[1].split(", ")


def test_schema_rejects_bad_config(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["sft"]["lr"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = snakemake("-n", "--configfile", str(path), check=False)
    assert proc.returncode != 0
    assert "lr" in proc.stdout + proc.stderr


# --- the whole study, small ---------------------------------------------------------------

CONTRACT_FILES = [
    "results/world/world.json",
    "results/world/corpus.jsonl",
    "results/data/sft/train.jsonl",
    "results/data/sft/test.jsonl",
    "results/data/sft/card.json",
    "results/tokenizer/tokenizer.json",
    "results/data/sft/tokens/train.parquet",
    "results/data/sft/tokens/test.json",
    "results/data/prefs/style_measures.csv",
    "results/judge/summary.csv",
    "results/judge/win_rates.csv",
    "results/helm/summary.csv",
    "results/style/generations.csv",
    "results/figures/figure2.pdf",
    "results/figures/figure2.png",
    "results/figures/figure3.pdf",
    "results/figures/figure3.png",
    "results/tables/significance.csv",
    "results/tables/claims.csv",
    "results/tables/helm_ci.csv",
    "results/tables/style_bias.csv",
    "results/figures/claims.png",
    "results/figures/style_bias.png",
]
MODELS = [
    "base",
    "sft",
    "dpo-ultrafeedback",
    "dpo-sycophantic",
    "dpo-authoritative",
    "dpo-persuasive",
]
DATASETS = ["ultrafeedback", "sycophantic", "authoritative", "persuasive"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """Run the whole DAG on .test/config.yaml in a scratch working directory."""
    work = tmp_path_factory.mktemp("workflow")
    # Config paths (prompts, published numbers, the HELM environment) are relative to the
    # working directory, as for a user running from the repository root.
    for name in ("config", ".test", ".venv-helm"):
        (work / name).symlink_to(REPO / name)
    snakemake("--cores", "2", "--configfile", str(TEST_CONFIG), cwd=work)
    return work


@pytest.mark.slow
def test_small_run_writes_every_contract_file(small_run):
    paths = list(CONTRACT_FILES)
    paths += [f"results/models/{m}/config.json" for m in MODELS]
    paths += [f"results/generations/{m}.jsonl" for m in MODELS]
    paths += [f"results/judge/{m}.jsonl" for m in MODELS]
    for dataset in DATASETS:
        paths += [f"results/data/prefs/{dataset}/{s}.jsonl" for s in ("train", "test")]
        paths += [f"results/data/prefs/{dataset}/ref_logps_{s}.parquet" for s in ("train", "test")]
        paths += [f"results/data/prefs/{dataset}/tokens/{s}.parquet" for s in ("train", "test")]
        paths.append(f"results/train/dpo-{dataset}/metrics.jsonl")
    for n in range(3, 9):
        paths += [f"results/tables/table{n}.csv", f"results/figures/table{n}.pdf"]
    missing = [
        p for p in paths if not (small_run / p).is_file() or (small_run / p).stat().st_size == 0
    ]
    assert not missing
    # HELM's values carry bootstrap intervals from the per-instance stats, which reproduce them.
    summary = pd.read_csv(small_run / "results/helm/summary.csv")
    with_value = summary[summary["value"].notna()]
    # ECE on a few instances may get none (resamples not bracketing it); means almost always do.
    means = with_value[with_value["family"] != "calibration"]
    assert means["ci_low"].notna().mean() > 0.9
    with_ci = with_value[with_value["ci_low"].notna()]
    assert (with_ci["ci_low"] <= with_ci["value"] + 1e-12).all()
    assert (with_ci["value"] <= with_ci["ci_high"] + 1e-12).all()
    log = (small_run / "logs/helm/summarize.log").read_text()
    # Every value is recomputed from HELM's per-instance stats except MMLU's ECE: HELM averages
    # it over the subject runs that have one, which the merged cell does not do yet (left empty
    # and counted, never filled with another number's interval).
    not_reproduced = r"no interval for \('[^']+', '(\w+)', '(\w+)'\): HELM's value not"
    unreproduced = re.findall(not_reproduced, log)
    assert set(unreproduced) <= {("calibration", "mmlu"), ("calibration", "mean_win_rate")}


@pytest.mark.slow
def test_first_dpo_step_is_ln2(small_run):
    for dataset in DATASETS:
        rows = [
            json.loads(line)
            for line in (small_run / f"results/train/dpo-{dataset}/metrics.jsonl")
            .read_text()
            .splitlines()
        ]
        for split in ("train", "eval"):
            first = next(r for r in rows if r["split"] == split)
            assert first["step"] == 0
            assert first["loss"] == pytest.approx(0.693147, abs=1e-4), (dataset, split)


@pytest.mark.slow
def test_second_run_has_nothing_to_do(small_run):
    proc = snakemake("-n", "--configfile", str(TEST_CONFIG), cwd=small_run)
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_one_style_setting_reruns_only_its_branch(small_run, tmp_path):
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["dpo"]["per_dataset"] = {"persuasive": {"beta": 0.05}}
    path = tmp_path / "changed.yaml"
    # safe_dump sorts keys: reordering the config must not count as a change either.
    path.write_text(yaml.safe_dump(config))
    proc = snakemake("-n", "--configfile", str(path), cwd=small_run)
    jobs = planned_jobs(proc.stdout)
    assert jobs["dpo"] == 1 and jobs["generate"] == 1 and jobs["helm_run"] == 1
    assert "results/models/dpo-persuasive" in proc.stdout
    assert "sft" not in jobs and "pretrain_base" not in jobs and "reference_logps" not in jobs


@pytest.mark.slow
def test_table4_builds_only_what_it_needs(tmp_path):
    for name in ("config", ".test", ".venv-helm"):
        (tmp_path / name).symlink_to(REPO / name)
    # The target goes first: --configfile takes every argument after it.
    proc = snakemake(
        "-n", "results/figures/table4.pdf", "--configfile", str(TEST_CONFIG), cwd=tmp_path
    )
    jobs = planned_jobs(proc.stdout)
    assert jobs["table4"] == 1 and "helm_summarize" in jobs
    for unneeded in ("judge", "generate", "table3", "figure2", "figure3", "style_table"):
        assert unneeded not in jobs


def changed_jobs(small_run: Path, tmp_path: Path, change) -> tuple[dict[str, int], str]:
    """The jobs a dry run plans on the finished small run after `change(config)`."""
    config = yaml.safe_load(TEST_CONFIG.read_text())
    change(config)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = snakemake("-n", "--configfile", str(path), cwd=small_run)
    return planned_jobs(proc.stdout), proc.stdout


@pytest.mark.slow
def test_shards_are_keyed_by_length_limits_not_by_training_values(small_run, tmp_path):
    jobs, _ = changed_jobs(
        small_run, tmp_path, lambda c: c["dpo"].update(max_completion_tokens=512)
    )
    assert jobs["tokenize_prefs"] == 8 and jobs["reference_logps"] == 8 and jobs["dpo"] == 4
    # the rewrites follow the UltraFeedback shard's rows (answered rows come from their cache)
    assert jobs["style_rewrite"] == 6
    for unaffected in ("tokenizer", "tokenize_sft", "pretrain_base", "sft"):
        assert unaffected not in jobs
    jobs, _ = changed_jobs(small_run, tmp_path, lambda c: c["sft"].update(lr=1.0e-3))
    assert jobs["sft"] == 1
    assert "tokenize_sft" not in jobs and "tokenize_prefs" not in jobs and "tokenizer" not in jobs


@pytest.mark.slow
def test_tone_filter_adds_its_branch_and_reruns_nothing_else(small_run, tmp_path):
    jobs, out = changed_jobs(
        small_run, tmp_path, lambda c: c.setdefault("tone_filter", {}).update(enabled=True)
    )
    assert jobs["tone_filter"] == 8 and jobs["tokenize_prefs"] == 8 and jobs["dpo"] == 4
    assert jobs["generate"] == 4 and jobs["helm_run"] == 4
    assert set(re.findall(r"results/models/(dpo-[\w-]+)\n", out)) == {
        f"dpo-{d}-tonal" for d in DATASETS
    }
    assert "sft" not in jobs and "pretrain_base" not in jobs and "style_rewrite" not in jobs
    # the paper's HELM tables compare the paper's models only: a new branch leaves them alone
    assert jobs["helm_summarize"] == 1 and "results/helm/summary_all.csv" in out
    assert not {"table4", "table5", "table6", "table7", "table8"} & set(jobs)


@pytest.mark.slow
def test_sft_on_chosen_adds_its_branch_and_reruns_nothing_else(small_run, tmp_path):
    jobs, out = changed_jobs(
        small_run, tmp_path, lambda c: c.setdefault("sft_on_chosen", {}).update(enabled=True)
    )
    assert jobs["sft_chosen_data"] == 2 and jobs["sft"] == 1 and jobs["dpo"] == 4
    assert jobs["reference_logps"] == 8 and jobs["generate"] == 5
    assert "output: results/models/sft-chosen," in out
    assert "ref_logps_train.sft-chosen.parquet" in out
    assert "pretrain_base" not in jobs and "tokenize_prefs" not in jobs
