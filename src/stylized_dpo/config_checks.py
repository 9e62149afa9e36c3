"""Config mistakes caught when the workflow is parsed, before any job runs, each naming its key.

`check_schema` runs config/schema.yaml itself and reports every violation at once, with a hint
where YAML read a number as a string (`lr: 1e-4` is a string in YAML 1.1). `check_config`
checks what a schema cannot: names that must be models or preference sets, architectures that
cannot be built, sections that need a value their `source` or `backend` implies.
`check_api_keys` runs when a real run starts (Snakemake's `onstart`, which dry runs skip): every
API backend among the jobs to run must find its key's variable set. It names the variable and
never reads out its value. Defaults come from the sections' own classes (`config.Section`), and
every problem is raised at once as one `config.ConfigError`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from stylized_dpo.config import ConfigError
from stylized_dpo.evals.judge import JudgeConfig
from stylized_dpo.evals.winrate import WinRateConfig
from stylized_dpo.synth.backends import OpenAISettings
from stylized_dpo.workflow_config import ArchitectureConfig

# ---------------------------------------------------------------------------------------------
# The schema, with hints for numbers YAML read as strings

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def yaml_number(text: str) -> str:
    """`text` (a number) written so that YAML 1.1 reads a number: a float needs a dot in its
    mantissa and a sign in its exponent (`1e-4` -> `1.0e-4`, `5e3` -> `5.0e+3`)."""
    mantissa, e, exponent = text.lower().partition("e")
    if not e:
        return mantissa
    if "." not in mantissa:
        mantissa += ".0"
    if exponent[0] not in "+-":
        exponent = "+" + exponent
    return f"{mantissa}e{exponent}"


def _string_number_hint(value: Any, expected: Any) -> str:
    if not isinstance(value, str) or not _NUMBER.fullmatch(value.strip()):
        return ""
    expected = expected if isinstance(expected, list) else [expected]
    if not {"number", "integer"} & set(expected):
        return ""
    text = value.strip()
    if "integer" in expected and "number" not in expected and float(text).is_integer():
        fix = str(int(float(text)))
    else:
        fix = yaml_number(text)
    if fix == text:
        return f" (a quoted number is a string: write {fix} without quotes)"
    return (
        f" (YAML 1.1, which reads the config, takes {text} for a string: a float needs a dot "
        f"and a signed exponent; write {fix})"
    )


def config_key(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def schema_problems(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every violation of `schema`, as "config key `a.b`: message[ hint]", in key order."""
    from jsonschema import Draft202012Validator

    errors = sorted(
        Draft202012Validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.path]
    )
    problems = []
    for error in errors:
        hint = ""
        if error.validator == "type":
            hint = _string_number_hint(error.instance, error.validator_value)
            if hint and isinstance(error.absolute_path[-1], int):
                # `--config seeds=[0,1]` is the usual way in: Snakemake reads its items as text
                hint += (
                    "; Snakemake's --config passes list items as strings, so give a list in a "
                    "file with --configfile"
                )
        problems.append(f"config key `{config_key(error.absolute_path)}`: {error.message}{hint}")
    return problems


def check_schema(config: Mapping[str, Any], schema_path: str | os.PathLike[str]) -> None:
    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    problems = schema_problems(config, schema)
    if problems:
        raise ConfigError(problems)


# ---------------------------------------------------------------------------------------------
# What the schema cannot say


def _name_problem(key: str, name: Any, allowed: list[str], what: str) -> str | None:
    if name in allowed:
        return None
    close = difflib.get_close_matches(str(name), allowed, n=1)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    return f"config key `{key}`: {name!r} is not {what}{guess}; they are {', '.join(allowed)}"


def name_problems(
    config: Mapping[str, Any], models: list[str], pref_datasets: list[str]
) -> list[str]:
    """Keys that must name a model or a preference set of this run."""
    found = []
    for name in config.get("dpo", {}).get("per_dataset", {}) or {}:
        found.append(
            _name_problem(f"dpo.per_dataset.{name}", name, pref_datasets, "a preference set")
        )
    baseline = config.get("win_rates", {}).get("baseline")
    if baseline is not None:
        found.append(_name_problem("win_rates.baseline", baseline, models, "a model"))
    for i, name in enumerate(config.get("helm", {}).get("plain_prompt_models", []) or []):
        found.append(_name_problem(f"helm.plain_prompt_models[{i}]", name, models, "a model"))
    return [p for p in found if p]


def architecture_problems(base_model: Mapping[str, Any]) -> list[str]:
    """Sizes of the tiny Qwen2 model that would end in a tensor error inside `pretrain_base`."""
    if base_model.get("source") != "pretrain":
        return []
    arch = ArchitectureConfig.from_dict(base_model.get("architecture") or {})
    key = "base_model.architecture"
    hidden, heads, kv_heads = arch.hidden_size, arch.num_attention_heads, arch.num_key_value_heads
    found = []
    if hidden % heads:
        found.append(
            f"config key `{key}.hidden_size`: {hidden} is not divisible by "
            f"num_attention_heads ({heads}); each head takes hidden_size / heads dimensions"
        )
    elif (hidden // heads) % 2:
        found.append(
            f"config key `{key}.hidden_size`: a head dimension of {hidden // heads} "
            f"(hidden_size {hidden} / {heads} heads) is odd; rotary embeddings rotate pairs of "
            "dimensions, so it must be even"
        )
    if heads % kv_heads:
        found.append(
            f"config key `{key}.num_attention_heads`: {heads} is not a multiple of "
            f"num_key_value_heads ({kv_heads}); grouped-query attention shares each key/value "
            "head among an equal number of query heads"
        )
    return found


def backend_problems(config: Mapping[str, Any]) -> list[str]:
    """Sections whose `source` or `backend` needs a value the section does not give."""
    found = []
    for kind in ("sft", "prefs"):
        section = config.get("data", {}).get(kind, {})
        source = section.get("source")
        if source == "local" and not section.get("path"):
            found.append(
                f"config key `data.{kind}.path`: `data.{kind}` has source local but no path "
                "(a file path containing {split}, or a folder of <split>.jsonl / .parquet)"
            )
        if source == "hub" and not section.get("name"):
            found.append(f"config key `data.{kind}.name`: source hub needs the dataset's name")
    synth = config.get("synth", {})
    if synth.get("backend", "rules") != "rules" and not synth.get("model"):
        found.append(
            f"config key `synth.model`: synth.backend {synth['backend']!r} needs the generator "
            "model (hub name or local path; the paper: google/gemma-3-12b-it)"
        )
    if synth.get("backend", "rules") == "rules":
        from stylized_dpo.style_phrases import PHRASE_BANKS

        for i, style in enumerate(config.get("styles", [])):
            if style not in PHRASE_BANKS:
                found.append(
                    f"config key `styles[{i}]`: the offline `rules` rewriter has no phrase bank "
                    f"for {style!r} (it knows {', '.join(sorted(PHRASE_BANKS))}); use an LLM "
                    "synth.backend (vllm, openai, transformers)"
                )
    win_rates = config.get("win_rates", {})
    backend = win_rates.get("backend")
    if backend in ("reward_api", "reward_model", "pairwise_judge") and not win_rates.get("model"):
        found.append(
            f"config key `win_rates.model`: win_rates.backend {backend!r} needs the model "
            "(reward model name or path, or the pairwise judge)"
        )
    tone = config.get("tone_filter", {})
    if tone.get("enabled"):
        from stylized_dpo.tone_filter import ToneAgnosticPatterns

        try:
            ToneAgnosticPatterns.from_file(tone["patterns"])
        except (OSError, ValueError) as e:
            found.append(f"config key `tone_filter.patterns`: {e}")
    return found


def check_config(config: Mapping[str, Any], models: list[str], pref_datasets: list[str]) -> None:
    """Raise ConfigError listing every problem of a schema-valid config."""
    problems = (
        name_problems(config, models, pref_datasets)
        + architecture_problems(config.get("base_model", {}))
        + backend_problems(config)
    )
    if problems:
        raise ConfigError(problems)


# ---------------------------------------------------------------------------------------------
# API keys, when a real run starts


def api_keys_needed(config: Mapping[str, Any], rules: Iterable[str]) -> dict[str, str]:
    """Config key of `api_key_env` -> the variable it names, for each API backend that one of
    the jobs' `rules` runs."""
    rules = set(rules)
    needed = {}
    judge, win_rates = JudgeConfig.in_config(config), WinRateConfig.in_config(config)
    if "judge" in rules and judge.backend == "openai":
        needed["judge.api_key_env"] = judge.api_key_env
    if "win_rates" in rules and win_rates.backend in ("reward_api", "pairwise_judge"):
        needed["win_rates.api_key_env"] = win_rates.api_key_env
    if "style_rewrite" in rules and config["synth"]["backend"] == "openai":
        needed["synth.openai.api_key_env"] = OpenAISettings.in_config(config).api_key_env
    return needed


def check_api_keys(
    config: Mapping[str, Any], rules: Iterable[str], environ: Mapping[str, str] = os.environ
) -> None:
    """Raise ConfigError naming every unset (or empty) key variable the jobs to run need."""
    problems = [
        f"environment variable {env} is not set (config key `{key}`): the "
        f"{key.rsplit('.', 1)[0]} backend reads its API key from it; export it, or name "
        "another variable there"
        for key, env in api_keys_needed(config, rules).items()
        if not environ.get(env)
    ]
    if problems:
        raise ConfigError(problems)
