"""What the paper's vLLM style rewriting would be asked, on the rows the rehearsal rewrote.

vLLM cannot run on a CPU, so the rehearsal rewrites through the `transformers` backend; this
builds the vLLM backend's own requests for the same rows (`vllm_engine_kwargs`,
`vllm_sampling_kwargs` with config/paper.yaml's `synth` section), renders each chat with the
generator's chat template (Gemma 3's: the system message merged into the first user turn) and
counts the tokens against `synth.vllm.max_model_len`. vLLM rejects a prompt longer than the
context, or one whose prompt plus `max_tokens` does not fit, and `LLM.chat` then aborts the
whole call. Token counts use the Qwen2.5 tokenizer as a proxy for Gemma's (not rebuildable
offline; both are ~150-260k-token BPEs), so they are estimates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stylized_dpo.hashing import row_key, row_seed
from stylized_dpo.io import read_records
from stylized_dpo.records import PreferencePair
from stylized_dpo.synth.backends import SynthConfig
from stylized_dpo.synth.generator import Request
from stylized_dpo.synth.styles import load_style
from stylized_dpo.synth.vllm_backend import vllm_engine_kwargs, vllm_sampling_kwargs


def check_rows(
    pairs_path: str | Path,
    style_path: str | Path,
    synth: dict[str, Any],
    seed: int,
    tokenizer: Any,
    chat_template: str,
) -> dict[str, Any]:
    """Requests for one style and split under `synth` (paper.yaml's section): counts of rows
    whose prompt, or prompt plus max_tokens, exceeds max_model_len."""
    cfg = SynthConfig.from_config(synth, seed)
    engine = vllm_engine_kwargs(cfg)
    style = load_style(style_path)
    pairs = read_records(pairs_path, PreferencePair)
    identity = cfg.identity()
    limit = engine.get("max_model_len")
    lengths, over_prompt, over_total = [], 0, 0
    for pair in pairs:
        key = row_key(pair, style, identity)
        messages = style.messages(pair.prompt, pair.chosen)
        request = Request(
            key=key,
            prompt_id=pair.prompt_id,
            messages=messages,
            style=style.name,
            answer=pair.chosen,
            seed=row_seed(cfg.seed, key),
        )
        sampling = vllm_sampling_kwargs(cfg, request)
        text = tokenizer.apply_chat_template(
            messages, chat_template=chat_template, tokenize=False, add_generation_prompt=True
        )
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        lengths.append(n)
        if limit is not None:
            over_prompt += n > limit
            over_total += n + sampling["max_tokens"] > limit
    lengths.sort()
    return {
        "style": style.name,
        "rows": len(pairs),
        "max_model_len": limit,
        "max_tokens": cfg.max_new_tokens,
        "prompt_tokens_p50": lengths[len(lengths) // 2] if lengths else None,
        "prompt_tokens_max": lengths[-1] if lengths else None,
        "over_max_model_len": over_prompt,
        "prompt_plus_max_tokens_over": over_total,
    }
