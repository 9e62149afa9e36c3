# Compute resources of GPU jobs (config `compute`), read by every profile: the local run ignores
# `runtime` and `gpu_mem_mb`; profiles/slurm turns them into sbatch options; profiles/runpod
# into a SkyPilot task on RunPod. `compute.gpus` is the one multi-GPU switch: training jobs run
# DDP over that many processes (torchrun); each vLLM job gets the parallelism its model allows
# (VLLM_GPUS). The scripts read the job's `gpu` resource, so a profile's `set-resources`
# override of one rule stays consistent with what that job launches.
# The Snakefile makes every rule without a GPU a local rule (stylized_dpo.cluster.cpu_rules),
# limits a local run's GPU jobs to the machine's GPUs, and checks before any job starts that
# each one's software environment is there.
from snakemake_interface_executor_plugins.settings import DeploymentMethod

from stylized_dpo.cluster import (
    ModelShape,
    check_gpu_limit,
    cpu_rules,
    detect_gpus,
    gpu_runtime,
    local_gpu_limit,
    missing_checkpoint_volume,
    missing_here,
    missing_images,
    model_shape,
    rule_gpus,
    software_env,
    vllm_gpus,
)


include: "sections.smk"


GPUS = COMPUTE.gpus
GPU_MEM_MB = COMPUTE.gpu_mem_mb
RUNTIME_MIN = {
    name: gpu_runtime(COMPUTE, name)
    for name in (
        "pretrain_base",
        "sft",
        "reference_logps",
        "dpo",
        "generate",
        "style_rewrite",
        "helm_run",
        "win_rates",
        "sycophancy",
    )
}
VLLM_MODELS = COMPUTE.vllm_models


def vllm_job_gpus(name):
    """GPUs of a vLLM job serving model `name` (validated here, when the workflow is parsed)."""
    if BASE_MODEL.source == "pretrain" and name == BASE_MODEL.name:
        arch = BASE_MODEL.architecture
        hidden, layers = arch.hidden_size, arch.num_hidden_layers
        # tied embeddings + ~12 h^2 per layer (attention and MLP)
        params = BASE_MODEL.tokenizer.vocab_size * hidden + layers * 12 * hidden**2
        shape = ModelShape(
            name, arch.num_attention_heads, 2 * params, "base_model.architecture"
        )
    else:
        shape = model_shape(name, VLLM_MODELS)
    tensor_parallel = VLLM_MODELS.get(name, {}).get("tensor_parallel")
    return vllm_gpus(shape, GPUS, GPU_MEM_MB, tensor_parallel)


# Every generated model has the base model's architecture; the rewriter is synth.model.
VLLM_GPUS = {
    "generate": (vllm_job_gpus(BASE_MODEL.name) if GENERATION.backend == "vllm" else 0),
    "style_rewrite": (vllm_job_gpus(SYNTH.model) if SYNTH.backend == "vllm" else 0),
}


def apply_local_gpu_limit():
    """A local run (no --jobs for a cluster) holds at most the machine's GPUs at once."""
    if workflow.resource_settings.nodes is not None or not workflow.is_main_process:
        return None
    limit = local_gpu_limit(
        workflow.global_resources.get("gpu").value,
        COMPUTE.local_gpus,
        detect_gpus(),
    )
    check_gpu_limit(limit, rule_gpus(workflow.rules))
    if limit.gpus is None:
        logger.info(f"GPU limit: none ({limit.source}; GPU jobs run on the CPU)")
    else:
        workflow.global_resources["gpu"] = limit.gpus
        logger.info(f"GPU limit: gpu={limit.gpus} at once ({limit.source})")
    return limit


def check_software_environments():
    """Before any job starts: each planned job's environment exists, named with its rule."""
    jobs = list(workflow.dag.needrun_jobs())
    submit = str(getattr(workflow.executor_settings, "submit_cmd", "") or "")
    with_conda = (
        DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    )
    here = [
        (j.rule.name, software_env(j.rule)) for j in jobs if workflow.is_local(j.rule)
    ]
    away = [
        (j.rule.name, software_env(j.rule))
        for j in jobs
        if not workflow.is_local(j.rule)
    ]
    # RunPod jobs run in images; with conda every rule's environment is deployed; otherwise
    # jobs run in this environment (on slurm, the same one on the shared disk).
    on_runpod = "runpod" in submit
    problems = missing_images(away, os.environ) if on_runpod else []
    if on_runpod:
        problems += missing_checkpoint_volume(
            [rule for rule, _ in away],
            CHECKPOINTS.dir,
            os.environ,
        )
    if not with_conda:
        problems += missing_here(
            here if on_runpod else here + away, HELM.executable_dir
        )
    if problems:
        raise WorkflowError(
            "software environments missing:\n  " + "\n  ".join(problems)
        )
