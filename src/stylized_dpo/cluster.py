"""Placement helpers for the workflow's profiles (used by rules/compute.smk and the Snakefile).

GPU rules carry `gpu`, `gpu_mem_mb`, `mem_mb`, `runtime` and `threads` resources; rules that
request no GPU run where Snakemake runs under every executor, so profiles/slurm and
profiles/runpod send only the GPU jobs away. Locally, the `gpu` resource is limited to the
GPUs of the machine, so two GPU jobs never share one. vLLM jobs get a parallelism their model
allows (tensor parallelism must divide the attention heads), and every job runs in a software
environment that has what it imports (its rule's conda environment; on RunPod, an image).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylized_dpo.workflow_config import ComputeConfig


def gpu_runtime(compute: ComputeConfig, rule_name: str) -> int:
    """Wall-clock limit (minutes) of a GPU rule: `compute.runtime_min.<rule>`, else `default`,
    else an hour."""
    runtimes = compute.runtime_min
    return int(runtimes.get(rule_name, runtimes.get("default", 60)))


def rule_gpus(rules: Iterable[Any]) -> dict[str, int | None]:
    """Rule name -> the GPUs each of its jobs requests (None: depends on the job's wildcards).

    A `gpu` given as a function is evaluated without wildcards (the workflow's ones depend on
    config only).
    """
    from snakemake.iocontainers import Wildcards  # only inside a Snakemake run

    gpus: dict[str, int | None] = {}
    for rule in rules:
        gpu = rule.resources.get("gpu")
        if gpu.is_evaluable():
            try:
                gpu = gpu.evaluate(Wildcards())
            except Exception:
                gpus[rule.name] = None
                continue
        gpus[rule.name] = int(gpu.value or 0)
    return gpus


def cpu_rules(rules: Iterable[Any]) -> list[str]:
    """Names of the Snakemake rules whose `gpu` resource is unset or 0.

    One whose `gpu` needs a job's wildcards or inputs counts as a GPU rule.
    """
    return sorted(name for name, gpus in rule_gpus(rules).items() if gpus == 0)


# ---------------------------------------------------------------------------------------------
# The local run's GPU limit.


def detect_gpus(environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """GPUs this process may use, and how that was found.

    CUDA_VISIBLE_DEVICES wins (CUDA stops at its first invalid entry, e.g. -1); then
    `nvidia-smi -L`; then the NVIDIA driver's device folder.
    """
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        n = 0
        for entry in visible.split(","):
            if not entry.strip() or entry.strip().startswith("-"):
                break
            n += 1
        return n, f"CUDA_VISIBLE_DEVICES={visible!r}"
    smi = shutil.which("nvidia-smi", path=environ.get("PATH"))
    if smi:
        try:
            out = subprocess.run(
                [smi, "-L"], capture_output=True, text=True, timeout=30, check=True
            ).stdout
            return sum(line.startswith("GPU ") for line in out.splitlines()), "nvidia-smi -L"
        except (OSError, subprocess.SubprocessError):
            pass
    driver = Path("/proc/driver/nvidia/gpus")
    if driver.is_dir():
        return sum(1 for _ in driver.iterdir()), str(driver)
    return 0, "no NVIDIA GPU found"


@dataclass(frozen=True)
class GpuLimit:
    """How many GPUs the jobs of a local run may hold at once (None: no limit)."""

    gpus: int | None
    source: str


def local_gpu_limit(
    given: int | None, configured: int | None, detected: tuple[int, str]
) -> GpuLimit:
    """`--resources gpu=N` (command line or profile) > `compute.local_gpus` > detection.

    Without any GPU, the workflow's GPU jobs run on the CPU (device `auto`) and share nothing,
    so their number stays limited by the cores alone.
    """
    if given is not None:
        return GpuLimit(given, "--resources gpu")
    if configured is not None:
        return GpuLimit(configured, "compute.local_gpus")
    n, how = detected
    return GpuLimit(n, how) if n > 0 else GpuLimit(None, how)


def check_gpu_limit(limit: GpuLimit, gpus: Mapping[str, int | None]) -> None:
    """Refuse a run whose GPU jobs cannot start under the limit, naming the rule."""
    if limit.gpus is None:
        return
    for name, n in sorted(gpus.items()):
        if n is not None and n > limit.gpus:
            raise ValueError(
                f"rule {name} requests {n} GPUs per job but this run may use {limit.gpus} "
                f"({limit.source}): lower compute.gpus, or give the GPUs with --resources gpu=N"
            )


# ---------------------------------------------------------------------------------------------
# vLLM parallelism.


@dataclass(frozen=True)
class ModelShape:
    """What choosing a vLLM parallelism needs to know about a model."""

    name: str
    attention_heads: int | None
    weight_bytes: int | None
    source: str


def model_shape(name: str, table: Mapping[str, Mapping[str, Any]]) -> ModelShape:
    """A local model folder's config.json and weight files, else `compute.vllm_models.<name>`."""
    folder = Path(name)
    config_file = folder / "config.json"
    if config_file.is_file():
        cfg = json.loads(config_file.read_text())
        heads = cfg.get(
            "num_attention_heads", cfg.get("text_config", {}).get("num_attention_heads")
        )
        weights = sum(p.stat().st_size for p in folder.glob("*.safetensors")) or None
        return ModelShape(name, heads, weights, str(config_file))
    entry = table.get(name)
    if entry is None:
        return ModelShape(name, None, None, "unknown")
    params_b = entry.get("params_b")
    weights = int(params_b * 2e9) if params_b else None  # bf16 weights
    return ModelShape(name, entry.get("attention_heads"), weights, f"compute.vllm_models.{name}")


def vllm_gpus(
    shape: ModelShape, gpus: int, gpu_mem_mb: int, tensor_parallel: int | None = None
) -> int:
    """GPUs (= tensor-parallel size) of one vLLM engine for `shape`, at most `gpus`.

    Tensor parallelism only where the weights would take more than half of one GPU (the other
    half holds the KV cache); otherwise one GPU per engine, and the workflow's many vLLM jobs
    (a model each, a style and split each) are the data-parallel replicas, side by side under
    the GPU limit. vLLM needs the size to divide the attention heads.
    """
    what = f"vLLM model {shape.name}"
    if tensor_parallel is not None:
        if shape.attention_heads and shape.attention_heads % tensor_parallel:
            raise ValueError(
                f"{what}: tensor_parallel {tensor_parallel} does not divide its "
                f"{shape.attention_heads} attention heads ({shape.source}); vLLM refuses it"
            )
        return tensor_parallel
    if gpus == 1:
        return 1
    if shape.attention_heads is None or shape.weight_bytes is None:
        raise ValueError(
            f"{what}: compute.gpus is {gpus} but its attention heads and size are unknown: set "
            f"compute.vllm_models.{shape.name}.attention_heads and .params_b (or .tensor_parallel)"
        )
    per_gpu = gpu_mem_mb * 1e6 / 2
    for d in range(1, gpus + 1):
        if shape.attention_heads % d == 0 and shape.weight_bytes / d <= per_gpu:
            return d
    raise ValueError(
        f"{what}: {shape.weight_bytes / 1e9:.1f} GB of weights need more than half of "
        f"{gpu_mem_mb} MB per GPU, and no tensor-parallel size up to compute.gpus ({gpus}) "
        f"that divides its {shape.attention_heads} attention heads gets there"
    )


# ---------------------------------------------------------------------------------------------
# Software environments.

# envs/<name>.yaml -> what it provides (Python modules, executables) and the RunPod image
# variable of the same stack.
SOFTWARE_ENVS: dict[str, dict[str, Any]] = {
    "training": {"modules": ["torch", "transformers"], "image": "RUNPOD_IMAGE"},
    "vllm": {"modules": ["vllm"], "image": "RUNPOD_IMAGE_VLLM"},
    "helm": {"executables": ["helm-run", "helm-summarize"], "image": "RUNPOD_IMAGE_HELM"},
}


def software_env(rule: Any) -> str:
    """The name of a rule's conda environment (envs/<name>.yaml); `training` without one."""
    return Path(str(rule.conda_env)).stem if rule.conda_env else "training"


def missing_images(jobs: Iterable[tuple[str, str]], environ: Mapping[str, str]) -> list[str]:
    """For RunPod: each (rule, environment) of the jobs sent there whose image is not set."""
    problems = []
    for rule, env in sorted(set(jobs)):
        var = SOFTWARE_ENVS[env]["image"]
        if not environ.get(var):
            problems.append(
                f"rule {rule} runs in envs/{env}.yaml on RunPod: set {var} to an image with "
                "that stack (README, 'Running on a cluster')"
            )
    return problems


RUNPOD_CHECKPOINT_MOUNT = "/mnt/checkpoints"
"""Where profiles/runpod/submit.py mounts the SkyPilot volume named by RUNPOD_CHECKPOINT_VOLUME."""
CHECKPOINTING_RULES = ("pretrain_base", "sft", "dpo")


def missing_checkpoint_volume(
    rules: Iterable[str], checkpoint_dir: str, environ: Mapping[str, str]
) -> list[str]:
    """For RunPod: training jobs whose checkpoints would die with their machine.

    A managed job restarted after a preemption lands on a fresh machine; it can only resume
    from checkpoints on a volume that outlives the first one.
    """
    training = sorted(set(rules) & set(CHECKPOINTING_RULES))
    if not training:
        return []
    on_volume = Path(checkpoint_dir).is_relative_to(RUNPOD_CHECKPOINT_MOUNT)
    if environ.get("RUNPOD_CHECKPOINT_VOLUME") and on_volume:
        return []
    return [
        f"training jobs ({', '.join(training)}) write resumable checkpoints to "
        f"checkpoints.dir={checkpoint_dir!r}, which a preempted RunPod machine takes with it: "
        "create a SkyPilot volume on RunPod (`sky volumes apply`), export "
        f"RUNPOD_CHECKPOINT_VOLUME=<its name> and set checkpoints.dir under "
        f"{RUNPOD_CHECKPOINT_MOUNT} (README, 'Running on a cluster')"
    ]


def missing_here(jobs: Iterable[tuple[str, str]], helm_dir: str = "") -> list[str]:
    """Without conda: each (rule, environment) whose modules or executables this one lacks."""
    problems = []
    for rule, env in sorted(set(jobs)):
        needs = SOFTWARE_ENVS[env]
        absent = [m for m in needs.get("modules", []) if importlib.util.find_spec(m) is None]
        for exe in needs.get("executables", []):
            path = str(Path(helm_dir) / exe) if helm_dir else shutil.which(exe)
            if not path or not os.access(path, os.X_OK):
                absent.append(exe)
        if absent:
            problems.append(
                f"rule {rule} needs envs/{env}.yaml, and this environment lacks "
                f"{', '.join(absent)}: run with --software-deployment-method conda, or install "
                "that stack here"
            )
    return problems
