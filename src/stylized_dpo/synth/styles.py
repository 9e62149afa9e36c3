"""Style definitions (config/prompts/styles/<style>.yaml) and the chat request built from them.

A style file holds `name`, `description`, `system_prompt` and `instructions`, the user message
template with `{prompt}` and `{answer}` placeholders. Its hash (`StyleSpec.prompt_hash`) is
recorded in every rewritten row and keys the generation cache, so editing a prompt regenerates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from stylized_dpo.hashing import style_prompt_hash

_PLACEHOLDER = re.compile(r"\{(prompt|answer)\}")
STYLE_KEYS = ("name", "description", "system_prompt", "instructions")


@dataclass(frozen=True)
class StyleSpec:
    """One target style for rewriting chosen answers."""

    name: str
    """Style name; also the preference dataset's name (`sycophantic`, ...)."""
    description: str
    """One line for tables and reports."""
    system_prompt: str
    """System message of every rewrite request."""
    instructions: str
    """User message template; `{prompt}` and `{answer}` are filled in per row."""

    def __post_init__(self) -> None:
        for key in STYLE_KEYS:
            value = getattr(self, key)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"style field '{key}' must be a non-empty string")
        found = set(_PLACEHOLDER.findall(self.instructions))
        if found != {"prompt", "answer"}:
            missing = sorted({"prompt", "answer"} - found)
            raise ValueError(f"style '{self.name}': instructions lack placeholder(s) {missing}")

    @property
    def prompt_hash(self) -> str:
        """sha256 (16 hex digits) of the name, system prompt and instructions."""
        return style_prompt_hash(self.name, self.system_prompt, self.instructions)

    def messages(self, prompt: str, answer: str) -> list[dict[str, str]]:
        """The chat request that asks a generator to rewrite `answer` (to `prompt`) in style."""
        values = {"prompt": prompt, "answer": answer}
        user = _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.instructions)
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": user},
        ]


def load_style(path: str | Path) -> StyleSpec:
    """Read and validate a style file; errors name the file and the key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read style file: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with keys {', '.join(STYLE_KEYS)}")
    unknown = sorted(set(data) - set(STYLE_KEYS))
    missing = [k for k in STYLE_KEYS if k not in data]
    if unknown or missing:
        raise ValueError(f"{path}: missing keys {missing}, unknown keys {unknown}")
    try:
        spec = StyleSpec(**{k: data[k] for k in STYLE_KEYS})
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    if spec.name != path.stem:
        raise ValueError(f"{path}: name '{spec.name}' differs from the file name '{path.stem}'")
    return spec
