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
    proc = subprocess.run([str(BIN / "snakefmt"), "--check", *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_default_dag_has_every_stage():
    jobs = planned_jobs(snakemake("-n", "--forceall").stdout)
    n_styles = 3
    assert jobs["world"] == 1
    assert jobs["style_rewrite"] == 2 * n_styles
    assert jobs["dpo"] == 1 + n_styles
    assert jobs["generate"] == 2 + 1 + n_styles
    assert jobs["helm_run"] == 2 + 1 + n_styles


def test_paper_dag_dry_runs():
    proc = snakemake("-n", "--forceall", "--configfile", str(REPO / "config" / "paper.yaml"))
    jobs = planned_jobs(proc.stdout)
    assert "world" not in jobs and "pretrain_base" not in jobs
    assert jobs["fetch_base_model"] == 1
    assert jobs["dpo"] == 4 and jobs["style_rewrite"] == 6


def test_adding_a_style_adds_its_branch(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["styles"] = config["styles"] + ["formal"]
    # The rules backend knows no "formal" phrases: an LLM backend rewrites a new style.
    config["synth"].update(backend="openai", model="some-chat-model")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = snakemake("-n", "--forceall", "--configfile", str(path), check=False)
    jobs = planned_jobs(proc.stdout)
    assert jobs.get("dpo") == 5, proc.stdout + proc.stderr


def test_schema_rejects_bad_config(tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["sft"]["lr"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = snakemake("-n", "--configfile", str(path), check=False)
    assert proc.returncode != 0
    assert "lr" in proc.stdout + proc.stderr
