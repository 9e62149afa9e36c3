"""Placement of GPU jobs: the local run's GPU limit, vLLM parallelism per model, and the check
that every job's software environment exists before any job starts (stylized_dpo.cluster,
rules/compute.smk)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stylized_dpo.cluster import (
    GpuLimit,
    ModelShape,
    check_gpu_limit,
    detect_gpus,
    local_gpu_limit,
    missing_here,
    missing_images,
    model_shape,
    vllm_gpus,
)

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
QWEN = ModelShape("Qwen/Qwen2.5-0.5B", 14, int(0.49e9 * 2), "test")
GEMMA = ModelShape("google/gemma-3-12b-it", 16, int(12.2e9 * 2), "test")


def snakemake(*args: str, env: dict | None = None, cwd: Path = ROOT, timeout: int = 180):
    return subprocess.run(
        [str(SNAKEMAKE), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | (env or {}),
    )


# ---------------------------------------------------------------------------------------------
# The local GPU limit.


@pytest.mark.parametrize(
    ("visible", "n"),
    [("0", 1), ("0,1,2", 3), ("", 0), ("-1", 0), ("1,-1,2", 1), ("GPU-a,GPU-b", 2)],
)
def test_visible_devices_count_as_cuda_counts_them(visible, n):
    assert detect_gpus({"CUDA_VISIBLE_DEVICES": visible, "PATH": ""})[0] == n


def test_nvidia_smi_counts_the_gpus_without_visible_devices(tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-1)'\n"
        "echo 'GPU 1: NVIDIA H200 (UUID: GPU-2)'\n"
    )
    smi.chmod(0o755)
    assert detect_gpus({"PATH": str(tmp_path)}) == (2, "nvidia-smi -L")


def test_the_limit_comes_from_the_command_line_then_config_then_the_machine():
    assert local_gpu_limit(1, 4, (8, "x")) == GpuLimit(1, "--resources gpu")
    assert local_gpu_limit(None, 4, (8, "x")) == GpuLimit(4, "compute.local_gpus")
    assert local_gpu_limit(None, None, (8, "nvidia-smi -L")) == GpuLimit(8, "nvidia-smi -L")
    # no GPU: the GPU rules' jobs run on the CPU and share no GPU
    assert local_gpu_limit(None, None, (0, "none")).gpus is None


def test_a_job_larger_than_the_limit_is_refused_by_rule():
    check_gpu_limit(GpuLimit(2, "nvidia-smi -L"), {"sft": 2, "judge": 0, "helm_run": None})
    with pytest.raises(
        ValueError, match=r"rule sft requests 4 GPUs per job but this run may use 2"
    ):
        check_gpu_limit(GpuLimit(2, "nvidia-smi -L"), {"sft": 4})


GPU_JOBS = """
include: "{root}/rules/compute.smk"

from snakemake.exceptions import WorkflowError
import os
import time

if {limited}:
    apply_local_gpu_limit()


rule all:
    input:
        expand("out/{{i}}.txt", i=range(3)),


rule gpu_job:
    output:
        "out/{{i}}.txt",
    resources:
        gpu=1,
    run:
        start = time.time()
        time.sleep(1.5)
        open(output[0], "w").write(f"{{start}} {{time.time()}}\\n")
"""


def most_at_once(out: Path) -> int:
    spans = [tuple(map(float, p.read_text().split())) for p in out.glob("*.txt")]
    assert len(spans) == 3
    return max(sum(s < t < e or s == t for s, e in spans) for t, _ in spans)


@pytest.mark.parametrize(
    ("visible", "limited", "expected"), [("0", True, 1), ("0,1", True, 2), ("0", False, 3)]
)
def test_the_documented_local_command_never_runs_more_gpu_jobs_than_gpus(
    tmp_path, visible, limited, expected
):
    """Three gpu=1 jobs under `--cores all` with the local profile (the README's command):
    without the limit (the control), all three run at once on one GPU."""
    (tmp_path / "Snakefile").write_text(GPU_JOBS.format(root=ROOT, limited=limited))
    (tmp_path / "config.yaml").write_text(
        "base_model: {source: hub, name: m}\ngeneration: {backend: transformers}\n"
        "synth: {backend: rules}\nhelm: {}\ncompute: {gpus: 1}\n"
    )
    proc = snakemake(
        "--profile",
        str(ROOT / "profiles" / "local"),
        "--cores",
        "3",
        "--configfile",
        "config.yaml",
        env={"CUDA_VISIBLE_DEVICES": visible, "PYTHONPATH": str(ROOT / "src")},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert most_at_once(tmp_path / "out") == expected


def test_the_workflow_shows_and_checks_its_gpu_limit(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    proc = snakemake(
        "-n", "--profile", "profiles/local", "--configfile", "config/paper.yaml", env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GPU limit: gpu=2 at once (CUDA_VISIBLE_DEVICES='0,1')" in proc.stdout + proc.stderr
    proc = snakemake("-n", "--cores", "all", "--resources", "gpu=1", env=env)
    assert "GPU limit: gpu=1 at once (--resources gpu)" in proc.stdout + proc.stderr
    four = tmp_path / "four.yaml"
    four.write_text("compute: {gpus: 4}\n")
    proc = snakemake("-n", "--configfile", "config/paper.yaml", str(four), env=env)
    assert proc.returncode != 0
    assert "rule dpo requests 4 GPUs per job but this run may use 2" in proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------
# vLLM parallelism.


@pytest.mark.parametrize("gpus", [1, 2, 4, 8])
def test_a_model_that_fits_one_gpu_gets_one_engine_per_gpu(gpus):
    assert vllm_gpus(QWEN, gpus, 80_000) == 1
    assert vllm_gpus(GEMMA, gpus, 80_000) == 1  # 24 GB of weights: no tensor parallelism


def test_tensor_parallelism_divides_the_heads_and_is_only_as_wide_as_needed():
    # 24.4 GB of weights, 16 heads, on 16 GB GPUs (8 GB for weights): 4 GPUs, not 3
    assert vllm_gpus(GEMMA, 8, 16_000) == 4
    assert vllm_gpus(GEMMA, 4, 16_000) == 4
    with pytest.raises(ValueError, match="no tensor-parallel size up to compute.gpus \\(2\\)"):
        vllm_gpus(GEMMA, 2, 16_000)
    # Qwen2.5-0.5B's 14 heads: 4 and 8 never divide
    big_qwen = ModelShape("q", 14, int(30e9), "test")
    assert vllm_gpus(big_qwen, 8, 16_000) == 7
    with pytest.raises(ValueError, match="14 attention heads"):
        vllm_gpus(big_qwen, 4, 16_000)


@pytest.mark.parametrize("tp", [4, 8])
def test_an_explicit_tensor_parallel_size_must_divide_the_heads(tp):
    assert vllm_gpus(GEMMA, 8, 80_000, tensor_parallel=tp) == tp
    with pytest.raises(ValueError, match=f"tensor_parallel {tp} does not divide its 14"):
        vllm_gpus(QWEN, 8, 80_000, tensor_parallel=tp)


def test_an_unknown_model_on_several_gpus_asks_for_its_shape(tmp_path):
    assert vllm_gpus(model_shape("org/unknown", {}), 1, 80_000) == 1
    with pytest.raises(ValueError, match="compute.vllm_models.org/unknown"):
        vllm_gpus(model_shape("org/unknown", {}), 4, 80_000)
    # a local model: its own config.json and weight files
    (tmp_path / "config.json").write_text('{"num_attention_heads": 14}')
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 1000)
    shape = model_shape(str(tmp_path), {})
    assert (shape.attention_heads, shape.weight_bytes) == (14, 1000)


def job_gpus(out: str, rule: str) -> set[str]:
    gpus, current = set(), None
    for line in out.splitlines():
        if line.startswith(("rule ", "localrule ")):
            current = line.split()[1].rstrip(":")
        elif current == rule and line.strip().startswith("resources:"):
            gpus |= {kv.split("=")[1] for kv in line.split(", ") if kv.startswith("gpu=")}
    return gpus


@pytest.mark.parametrize("gpus", [4, 8])
def test_the_papers_dag_with_4_or_8_gpus_gives_vllm_jobs_a_valid_parallelism(tmp_path, gpus):
    override = tmp_path / "gpus.yaml"
    override.write_text(f"compute: {{gpus: {gpus}, local_gpus: 8}}\n")
    proc = snakemake(
        "-n", "--forceall", "--verbose", "--configfile", "config/paper.yaml", str(override)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert job_gpus(proc.stdout, "generate") == {"1"}  # 14 heads: never 4 or 8
    assert job_gpus(proc.stdout, "style_rewrite") == {"1"}
    assert job_gpus(proc.stdout, "sft") == {str(gpus)}  # DDP has no head constraint
    override.write_text(
        f"compute: {{gpus: {gpus}, local_gpus: 8, vllm_models: "
        f"{{Qwen/Qwen2.5-0.5B: {{attention_heads: 14, params_b: 0.49, "
        f"tensor_parallel: {gpus}}}}}}}\n"
    )
    proc = snakemake("-n", "--configfile", "config/paper.yaml", str(override))
    assert proc.returncode != 0
    assert f"tensor_parallel {gpus} does not divide its 14 attention heads" in proc.stdout


def test_the_miniatures_own_model_on_vllm_takes_its_heads_from_config(tmp_path):
    override = tmp_path / "vllm.yaml"
    override.write_text("generation: {backend: vllm}\ncompute: {gpus: 2, local_gpus: 2}\n")
    proc = snakemake("-n", "--forceall", "--verbose", "--configfile", str(override))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert job_gpus(proc.stdout, "generate") == {"1"}


# ---------------------------------------------------------------------------------------------
# Software environments.


def test_runpod_names_the_rule_and_the_image_variable_it_lacks():
    jobs = [("generate", "vllm"), ("sft", "training"), ("helm_run", "helm"), ("dpo", "training")]
    problems = missing_images(jobs, {"RUNPOD_IMAGE": "img"})
    assert [p.split(" runs")[0] for p in problems] == ["rule generate", "rule helm_run"]
    assert "RUNPOD_IMAGE_VLLM" in problems[0] and "RUNPOD_IMAGE_HELM" in problems[1]
    assert (
        missing_images(
            jobs, dict.fromkeys(["RUNPOD_IMAGE", "RUNPOD_IMAGE_VLLM", "RUNPOD_IMAGE_HELM"], "i")
        )
        == []
    )


def test_without_conda_each_rule_needs_its_stack_here(tmp_path):
    (problem,) = missing_here([("generate", "vllm"), ("sft", "training")])
    assert problem.startswith("rule generate needs envs/vllm.yaml") and "lacks vllm" in problem
    helm = tmp_path / "helm-run"
    helm.write_text("#!/bin/sh\n")
    helm.chmod(0o755)
    (problem,) = missing_here([("helm_run", "helm")], helm_dir=str(tmp_path))
    assert "lacks helm-summarize" in problem


def test_a_run_stops_before_any_job_when_a_planned_rule_lacks_its_environment(tmp_path):
    """config/paper.yaml here, without conda: vLLM is not installed, so the run must stop
    before its first job (a download from the hub) and name the vLLM rules."""
    proc = snakemake("--cores", "1", "--nolock", "--configfile", "config/paper.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        "rule generate needs envs/vllm.yaml" in out
        and "rule style_rewrite needs envs/vllm.yaml" in out
    )
    assert "Select jobs to execute" not in out and "Finished job" not in out  # no job ran
