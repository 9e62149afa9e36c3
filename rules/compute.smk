# Compute resources of GPU jobs (config `compute`), read by every profile: the local run ignores
# `runtime` and `gpu_mem_mb`; profiles/slurm turns them into sbatch options; profiles/runpod
# into a SkyPilot task on RunPod. `compute.gpus` is the one multi-GPU switch: training jobs run
# DDP over that many processes (torchrun) and vLLM jobs shard the model over that many GPUs
# (tensor parallelism); the scripts read the job's `gpu` resource, so a profile's
# `set-resources` override of one rule stays consistent with what that job launches.
# The Snakefile makes every rule without a GPU a local rule (stylized_dpo.cluster.cpu_rules).
from stylized_dpo.cluster import cpu_rules, gpu_runtime

COMPUTE = config.get("compute", {})
GPUS = COMPUTE.get("gpus", 1)
GPU_MEM_MB = COMPUTE.get("gpu_mem_mb", 0)
RUNTIME_MIN = {
    name: gpu_runtime(COMPUTE, name)
    for name in (
        "pretrain_base",
        "sft",
        "reference_logps",
        "dpo",
        "generate",
        "style_rewrite",
    )
}
