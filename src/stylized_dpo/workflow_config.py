"""The config sections that only the workflow reads (no stage's library function takes them):
`base_model`, `data.eval_prompts`, `checkpoints` and `compute`. rules/common.smk builds each
once, as it builds the stages' own `*Config` sections; the defaults live here, not in the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from stylized_dpo.config import Section


@dataclass(frozen=True)
class TokenizerSpec(Section):
    """`base_model.tokenizer`: the tiny tokenizer's size and an optional chat template."""

    section: ClassVar[str] = "base_model.tokenizer"

    vocab_size: int | None = None
    """Vocabulary of the tokenizer trained here (source `pretrain`)."""
    chat_template: str | None = None
    """A Jinja file replacing the tokenizer's chat template (None keeps it)."""


@dataclass(frozen=True)
class ArchitectureConfig(Section):
    """`base_model.architecture`: the sizes of the tiny Qwen2 model (`model.tiny_qwen2_config`
    has the same defaults)."""

    section: ClassVar[str] = "base_model.architecture"

    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 512
    max_position_embeddings: int = 512
    """Also the tokenizer's `model_max_length`."""


@dataclass(frozen=True)
class BaseModelConfig(Section):
    """`base_model`: pretrained here on the world corpus (`pretrain`) or fetched (`hub`)."""

    section: ClassVar[str] = "base_model"

    source: str
    """`pretrain` or `hub`."""
    name: str
    """Display name (pretrain) or hub name."""
    revision: str | None = None
    """Hub revision to pin (None: the default branch)."""
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)
    pretrain: dict[str, Any] = field(default_factory=dict)
    """`train.pretrain.PretrainConfig`'s values (the job parses them)."""


@dataclass(frozen=True)
class EvalPromptsConfig(Section):
    """`data.eval_prompts`: the prompts every model answers."""

    section: ClassVar[str] = "data.eval_prompts"

    source: str = "world"
    """`world` (the tiny world's prompts, with ground truth) or `prefs_test` (the first `n`
    prompts of the prepared UltraFeedback test split)."""
    n: int = 100


@dataclass(frozen=True)
class CheckpointsConfig(Section):
    """`checkpoints`: where resumable training checkpoints live (changes no result)."""

    section: ClassVar[str] = "checkpoints"

    dir: str = "results/train"
    keep: int = 2


@dataclass(frozen=True)
class ComputeConfig(Section):
    """`compute`: the GPU jobs' resources (rules/compute.smk) and `snakemake plan`'s tables."""

    section: ClassVar[str] = "compute"

    gpus: int = 1
    """The one multi-GPU switch: DDP processes of training jobs, the ceiling of vLLM jobs."""
    gpu_mem_mb: int = 0
    local_gpus: int | None = None
    """GPUs a local run's jobs may hold at once (None: detected)."""
    vllm_models: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Hub model -> attention_heads, params_b, tensor_parallel."""
    runtime_min: dict[str, int] = field(default_factory=dict)
    """GPU rule name (or `default`) -> wall-clock limit in minutes."""
    plan: dict[str, Any] = field(default_factory=dict)
    throughput: dict[str, Any] = field(default_factory=dict)
