#!/usr/bin/env python3
"""Submit one Snakemake job to RunPod as a SkyPilot managed job; print its job id.

Called by Snakemake's generic cluster executor as `submit.py JOBSCRIPT`. The job's GPU count,
GPU memory, memory, runtime and threads come from the jobscript's properties (the rule's
`resources` and `threads`). Settings from the environment:
  RUNPOD_IMAGE       container image with this project's training stack (envs/training.yaml)
  RUNPOD_IMAGE_VLLM  image with the vLLM stack (envs/vllm.yaml) for jobs whose rule uses it
  RUNPOD_IMAGE_HELM  image with the HELM stack (envs/helm.yaml) for HELM jobs
                     (each job's `software_env` resource, the stem of its rule's conda file,
                     picks one; the workflow checks before any job starts that it is set)
  RUNPOD_GPU_TYPES   comma list of GPU types to accept (default: every type in GPU_MEMORY_MB
                     with at least the job's gpu_mem_mb)
  RUNPOD_INFRA       SkyPilot infra (default runpod; e.g. lambda)
  RUNPOD_SECRETS     extra variable names to forward as secrets (e.g. HF_TOKEN)
  RUNPOD_WORKDIR     folder synced to the machine as the job's working directory (default .)
  RUNPOD_CHECKPOINT_VOLUME
                     a SkyPilot volume on RunPod, mounted at CHECKPOINT_MOUNT in every job, so
                     a job restarted after a preemption resumes from its checkpoints (config
                     `checkpoints.dir` under that mount; the workflow checks before any job)
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from skyjobs import LauncherError, fail, read_jobscript, redact, run_launcher, secret_names  # noqa: E402

# GPU types as SkyPilot's RunPod catalogue names them (sky/provision/runpod/utils.py,
# GPU_NAME_MAP) and their memory (MB), smallest first. Other infras (RUNPOD_INFRA=lambda) name
# their GPUs differently: set RUNPOD_GPU_TYPES there.
GPU_MEMORY_MB = {
    "L4": 24_000,
    "RTX4090": 24_000,
    "A40": 48_000,
    "L40S": 48_000,
    "A100-80GB": 80_000,
    "A100-80GB-SXM": 80_000,
    "H100": 80_000,
    "H100-SXM": 80_000,
    "H100-NVL": 94_000,
    "H200-SXM": 141_000,
    "B200": 180_000,
}


# A job's software environment (envs/<name>.yaml) -> the variable naming its image; the same
# table as stylized_dpo.cluster.SOFTWARE_ENVS, which the workflow's start-up check reads.
IMAGE_VARIABLES = {
    "training": "RUNPOD_IMAGE",
    "vllm": "RUNPOD_IMAGE_VLLM",
    "helm": "RUNPOD_IMAGE_HELM",
}


# The same path as stylized_dpo.cluster.RUNPOD_CHECKPOINT_MOUNT (a test keeps them equal).
CHECKPOINT_MOUNT = "/mnt/checkpoints"


def gpu_types(gpu_mem_mb: int) -> list[str]:
    chosen = os.environ.get("RUNPOD_GPU_TYPES", "")
    if chosen:
        return [t.strip() for t in chosen.split(",") if t.strip()]
    types = [t for t, mem in GPU_MEMORY_MB.items() if mem >= gpu_mem_mb]
    if not types:
        fail(f"no GPU type has {gpu_mem_mb} MB; set RUNPOD_GPU_TYPES")
    return types


def task_spec(props: dict, env: dict[str, str], command: str) -> tuple[dict, list[str]]:
    """The SkyPilot task (no secret values) and the names of the secrets to forward."""
    res = props.get("resources", {})
    gpus = int(res.get("gpu", 0) or 0)
    if gpus < 1:
        fail(f"rule {props.get('rule')} requests no GPU: it should run locally (localrules)")
    software_env = str(res.get("software_env", "training"))
    if software_env not in IMAGE_VARIABLES:
        fail(f"rule {props.get('rule')}: unknown software_env {software_env!r}")
    image = os.environ.get(IMAGE_VARIABLES[software_env], "")
    if not image:
        fail(
            f"rule {props.get('rule')} runs in envs/{software_env}.yaml: "
            f"{IMAGE_VARIABLES[software_env]} is not set (an image with that stack)"
        )
    explicit = {n.strip() for n in os.environ.get("RUNPOD_SECRETS", "").split(",") if n.strip()}
    missing = sorted(n for n in explicit if n not in os.environ)
    if missing:
        fail(f"RUNPOD_SECRETS names variables that are not set: {missing}")
    secrets = sorted({n for n in env if n in secret_names(env)} | explicit)
    public_env = {n: v for n, v in env.items() if n not in secrets}
    types = gpu_types(int(res.get("gpu_mem_mb", 0) or 0))
    name = f"smk-{props.get('rule', 'job')}-{props.get('jobid', 0)}"
    task = {
        "name": re.sub(r"[^a-zA-Z0-9-]", "-", name),
        "workdir": os.environ.get("RUNPOD_WORKDIR", "."),
        "resources": {
            "infra": os.environ.get("RUNPOD_INFRA", "runpod"),
            "accelerators": {t: gpus for t in types},
            "cpus": f"{max(1, int(props.get('threads', 1)))}+",
            "memory": f"{max(1, int(res.get('mem_mb', 1000)) // 1000)}+",
            "image_id": f"docker:{image}",
            "job_recovery": {"max_restarts_on_errors": 0},
        },
        "envs": public_env,
        "secrets": dict.fromkeys(secrets),
        "run": command,
        "runtime_min": int(res.get("runtime", 0) or 0),
    }
    volume = os.environ.get("RUNPOD_CHECKPOINT_VOLUME", "")
    if volume:
        task["volumes"] = {CHECKPOINT_MOUNT: volume}
    return task, secrets


def main(jobscript: str) -> None:
    props, env, command = read_jobscript(jobscript)
    task, secrets = task_spec(props, env, command)
    runtime = task.pop("runtime_min")
    if runtime:  # SkyPilot has no wall-clock limit: the command carries one
        task["run"] = f"timeout {runtime * 60} {task['run']}"
    spec_dir = Path(".snakemake/runpod")
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = spec_dir / f"{task['name']}.yaml"
    spec.write_text(json.dumps(task, indent=2) + "\n")  # JSON is YAML
    args = ["jobs", "launch", "--name", task["name"], "--yes", "--detach-run"]
    for name in secrets:
        args += ["--secret", name]
    try:
        out = run_launcher([*args, str(spec)])
    except LauncherError as err:
        fail(str(err))
    match = re.search(r"managed job id:\s*(\d+)", out, re.IGNORECASE)
    if not match:
        fail(f"no 'Managed job ID' in the launcher's answer: {out.strip()[-500:]}")
    print(match.group(1))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: submit.py JOBSCRIPT")
    try:
        main(sys.argv[1])
    except (OSError, ValueError) as err:
        fail(redact(str(err)))
