"""Generator backends that rewrite chosen answers (config `synth.backend`).

- `rules`: the deterministic offline stand-in (style_phrases.py); no model.
- `vllm`: offline batched `LLM.chat` (synth/vllm_backend.py).
- `openai`: any OpenAI-compatible chat-completions endpoint (synth/openai_backend.py).
- `transformers`: a local chat model through `generate` (synth/transformers_backend.py).

Every backend maps a list of `Request`s to `Completion`s in the same order (`GeneratorBackend`,
synth/generator.py); `GENERATORS` names them. Each request carries its own seed, derived from
the run seed and the row's cache key, so a row's output does not depend on which other rows
share its batch (vllm and openai honour per-request seeds; transformers seeds each batch and
`rewrite` keeps batches fixed across restarts).

A backend may also `stream` its results, row by row as they arrive, so that `rewrite` caches
each answered row at once; a row that fails on its own comes back as a `RowFailure` (counted,
never cached) instead of failing its batch. The vllm backend also `check`s each request's
length against the engine's context before sending it: vLLM rejects an over-long prompt by
aborting the whole `LLM.chat` call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from stylized_dpo import style_phrases
from stylized_dpo.api import ClientSettings
from stylized_dpo.config import Section
from stylized_dpo.synth.generator import Completion, GeneratorBackend, Request
from stylized_dpo.synth.openai_backend import OpenAIBackend
from stylized_dpo.synth.transformers_backend import TransformersBackend
from stylized_dpo.synth.vllm_backend import VLLMBackend


class RulesBackend:
    """The deterministic phrase-bank rewriter (offline stand-in for an LLM)."""

    name = "rules"
    whole_batches = False

    def __init__(self, cfg: SynthConfig):
        self.cfg = cfg

    def generate(self, requests: list[Request]) -> list[Completion]:
        return [
            Completion(style_phrases.rewrite(r.answer, r.style, key=r.prompt_id), "stop")
            for r in requests
        ]


GENERATORS: dict[str, type[GeneratorBackend]] = {
    "rules": RulesBackend,
    "vllm": VLLMBackend,
    "openai": OpenAIBackend,
    "transformers": TransformersBackend,
}
"""Config `synth.backend` -> its class, built with the `SynthConfig`."""
BACKENDS = tuple(GENERATORS)


@dataclass(frozen=True)
class VLLMSettings(Section):
    """`synth.vllm`: engine options of vllm.LLM."""

    section: ClassVar[str] = "synth.vllm"

    tensor_parallel_size: int = 1
    """GPUs one model is sharded over."""
    max_model_len: int | None = None
    """Context length the engine reserves memory for (None: the model's own)."""
    gpu_memory_utilization: float = 0.9
    """Share of GPU memory vLLM may take."""
    dtype: str = "auto"
    """Weights dtype (`auto`, `bfloat16`, ...)."""


@dataclass(frozen=True)
class OpenAISettings(ClientSettings, Section):
    """`synth.openai`: an OpenAI-compatible endpoint (fields: `api.ClientSettings`; retries
    also cover malformed bodies)."""

    section: ClassVar[str] = "synth.openai"


@dataclass(frozen=True)
class TransformersSettings(Section):
    """`synth.transformers`: a local chat model."""

    section: ClassVar[str] = "synth.transformers"

    device: str = "auto"
    """`cpu`, `cuda`, or `auto` (cuda when available)."""
    dtype: str = "float32"
    """Weights dtype."""


@dataclass(frozen=True)
class SynthConfig(Section):
    """Config `synth` plus the run seed."""

    section: ClassVar[str] = "synth"
    label: ClassVar[str] = "synth"

    backend: str = "rules"
    """rules | vllm | openai | transformers."""
    model: str | None = None
    """Generator model (hub name or local path); None only for `rules`."""
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 1024
    seed: int = 0
    """Run seed; each row's seed derives from it and the row's key."""
    batch_size: int = 64
    """Rows per backend call; each answered row is appended to the cache as it arrives."""
    max_drop_fraction: float = 0.5
    """Fail, rather than write a much smaller set, when more rows than this are filtered out."""
    vllm: VLLMSettings = field(default_factory=VLLMSettings)
    openai: OpenAISettings = field(default_factory=OpenAISettings)
    transformers: TransformersSettings = field(default_factory=TransformersSettings)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"synth.backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend != "rules" and not self.model:
            raise ValueError(f"synth.backend {self.backend!r} needs synth.model")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("synth.batch_size and synth.max_new_tokens must be positive")

    @classmethod
    def from_config(cls, cfg: dict[str, Any], seed: int) -> SynthConfig:
        """The `synth` section with the run's seed."""
        return cls.from_dict({**cfg, "seed": seed})

    def sampling(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
        }

    def identity(self) -> dict[str, Any]:
        """Everything that changes a generated text (keys the cache)."""
        out: dict[str, Any] = {
            "backend": self.backend,
            "model": self.model,
            "sampling": self.sampling(),
            "seed": self.seed,
        }
        if self.backend == "vllm":
            out["dtype"] = self.vllm.dtype
        if self.backend == "transformers":
            out["dtype"] = self.transformers.dtype
            out["batch_size"] = self.batch_size  # batch composition changes sampled text
        return out


def make_backend(cfg: SynthConfig) -> Any:
    return GENERATORS[cfg.backend](cfg)  # type: ignore[call-arg]
