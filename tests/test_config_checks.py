"""Config mistakes caught when the workflow is parsed (or, for API keys, when a real run starts),
each naming its key: the checks one by one, then through Snakemake itself."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stylized_dpo.config_checks import (
    ConfigError,
    api_keys_needed,
    architecture_problems,
    backend_problems,
    check_api_keys,
    check_config,
    name_problems,
    schema_problems,
    yaml_number,
)

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
DATASETS = ["ultrafeedback", "sycophantic", "authoritative", "persuasive"]
MODELS = ["base", "sft"] + [f"dpo-{d}" for d in DATASETS]


def default(**sections):
    config = copy.deepcopy(DEFAULT)
    for section, values in sections.items():
        config[section].update(values)
    return config


# --- the schema, with YAML's number syntax ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fixed"), [("1e-4", "1.0e-4"), ("5e3", "5.0e+3"), ("2.5E5", "2.5e+5")]
)
def test_yaml_number_is_what_yaml_reads_as_a_number(text, fixed):
    assert yaml.safe_load(f"x: {text}")["x"] == text  # YAML 1.1: a string
    assert yaml_number(text) == fixed
    assert yaml.safe_load(f"x: {fixed}")["x"] == float(text)


def test_a_number_yaml_read_as_a_string_gets_a_hint():
    config = default(sft={"lr": "1e-4"})
    config["base_model"]["pretrain"]["steps"] = "1e3"
    config["dpo"]["warmup_ratio"] = "0.1"
    assert schema_problems(config, SCHEMA) == [
        "config key `base_model.pretrain.steps`: '1e3' is not of type 'integer' (YAML 1.1, "
        "which reads the config, takes 1e3 for a string: a float needs a dot and a signed "
        "exponent; write 1000)",
        "config key `dpo.warmup_ratio`: '0.1' is not of type 'number' (a quoted number is a "
        "string: write 0.1 without quotes)",
        "config key `sft.lr`: '1e-4' is not of type 'number' (YAML 1.1, which reads the config, "
        "takes 1e-4 for a string: a float needs a dot and a signed exponent; write 1.0e-4)",
    ]


def test_every_schema_problem_is_named_at_once():
    config = default(sft={"lr": -1}, judge={"backend": "gpt"})
    config["helm"]["extra"] = 1
    problems = schema_problems(config, SCHEMA)
    assert any(p.startswith("config key `sft.lr`: -1 is less than") for p in problems)
    assert any(p.startswith("config key `judge.backend`: 'gpt' is not one of") for p in problems)
    assert any("config key `helm`" in p and "'extra' was unexpected" in p for p in problems)
    assert schema_problems(DEFAULT, SCHEMA) == []


@pytest.mark.parametrize(
    ("seeds", "words"),
    [([], "should be non-empty"), ([0, 0], "has non-unique elements"), ([-1], "less than")],
)
def test_seeds_are_a_non_empty_list_of_distinct_offsets(seeds, words):
    problems = schema_problems({**DEFAULT, "seeds": seeds}, SCHEMA)
    assert (
        len(problems) == 1 and problems[0].startswith("config key `seeds") and words in problems[0]
    )


def test_a_list_from_snakemakes_command_line_gets_a_hint():
    from snakemake.cli import parse_config

    seeds = parse_config(["seeds=[0,1]"])["seeds"]  # what `--config seeds=[0,1]` passes
    problems = schema_problems({**DEFAULT, "seeds": seeds}, SCHEMA)
    assert problems == [
        f"config key `seeds.{i}`: '{i}' is not of type 'integer' (a quoted number is a string: "
        f"write {i} without quotes); Snakemake's --config passes list items as strings, so give "
        "a list in a file with --configfile"
        for i in (0, 1)
    ]


# --- names, architectures, backends -----------------------------------------------------------


def test_per_dataset_keys_must_be_preference_sets():
    config = default(dpo={"per_dataset": {"persuasiv": {"beta": 0.01}, "sycophantic": {}}})
    assert name_problems(config, MODELS, DATASETS) == [
        "config key `dpo.per_dataset.persuasiv`: 'persuasiv' is not a preference set (did you "
        "mean 'persuasive'?); they are ultrafeedback, sycophantic, authoritative, persuasive"
    ]


def test_baseline_and_plain_prompt_models_must_be_models():
    config = default(win_rates={"baseline": "bse"}, helm={"plain_prompt_models": ["base", "x"]})
    problems = name_problems(config, MODELS, DATASETS)
    assert problems[0].startswith(
        "config key `win_rates.baseline`: 'bse' is not a model (did you mean 'base'?)"
    )
    assert problems[1].startswith("config key `helm.plain_prompt_models[1]`: 'x' is not a model;")
    assert name_problems(DEFAULT, MODELS, DATASETS) == []


@pytest.mark.parametrize(
    ("arch", "key", "words"),
    [
        ({"num_attention_heads": 4, "num_key_value_heads": 3}, "num_attention_heads", "multiple"),
        ({"hidden_size": 130}, "hidden_size", "130 is not divisible by num_attention_heads (4)"),
        ({"hidden_size": 12}, "hidden_size", "a head dimension of 3"),
    ],
)
def test_impossible_architectures(arch, key, words):
    base = copy.deepcopy(DEFAULT["base_model"])
    base["architecture"].update(arch)
    (problem,) = architecture_problems(base)
    assert problem.startswith(f"config key `base_model.architecture.{key}`") and words in problem
    assert architecture_problems({**base, "source": "hub"}) == []  # the hub model's own sizes


def test_sections_that_need_a_value_their_source_or_backend_implies(tmp_path):
    config = default(
        synth={"backend": "openai", "model": None},
        win_rates={"backend": "reward_api", "model": None},
    )
    config["data"]["prefs"].update(source="local", path=None)
    config["data"]["sft"].update(source="hub", name="")
    problems = backend_problems(config)
    assert [p.split(":")[0] for p in problems] == [
        "config key `data.sft.name`",
        "config key `data.prefs.path`",
        "config key `synth.model`",
        "config key `win_rates.model`",
    ]
    assert "`data.prefs` has source local but no path" in problems[1]
    bad = tmp_path / "p.yaml"
    bad.write_text("code: ['(unclosed']\n")
    config = default(tone_filter={"enabled": True, "patterns": str(bad)})
    config["styles"] = ["sycophantic", "formal"]
    problems = backend_problems(config)
    assert problems[0].startswith("config key `styles[1]`: the offline `rules` rewriter has no")
    assert (
        problems[1].startswith("config key `tone_filter.patterns`: ") and "code[0]" in problems[1]
    )
    assert backend_problems(DEFAULT) == []


def test_check_config_lists_every_problem():
    config = default(win_rates={"baseline": "bse"})
    config["base_model"]["architecture"]["num_key_value_heads"] = 3
    with pytest.raises(ConfigError, match=r"^2 config problems:\n- config key `win_rates"):
        check_config(config, MODELS, DATASETS)
    check_config(DEFAULT, MODELS, DATASETS)


# --- API keys ---------------------------------------------------------------------------------

API = default(
    judge={"backend": "openai"},
    win_rates={"backend": "pairwise_judge", "model": "m", "api_key_env": "MY_JUDGE_KEY"},
    synth={"backend": "openai", "model": "m"},
)


def test_api_keys_are_needed_only_by_the_jobs_that_run():
    assert api_keys_needed(API, ["judge", "win_rates", "style_rewrite", "sft"]) == {
        "judge.api_key_env": "OPENAI_API_KEY",
        "win_rates.api_key_env": "MY_JUDGE_KEY",
        "synth.openai.api_key_env": "OPENAI_API_KEY",
    }
    assert api_keys_needed(API, ["helm_run", "table4"]) == {}
    assert api_keys_needed(DEFAULT, ["judge", "win_rates", "style_rewrite"]) == {}
    reward = default(win_rates={"backend": "reward_api", "model": "m"})
    assert api_keys_needed(reward, ["win_rates"]) == {"win_rates.api_key_env": "NVIDIA_API_KEY"}


def test_missing_keys_are_named_and_set_keys_never_shown():
    with pytest.raises(ConfigError) as e:
        check_api_keys(API, ["judge", "win_rates"], {"OPENAI_API_KEY": "sk-secret-123"})
    assert str(e.value) == (
        "environment variable MY_JUDGE_KEY is not set (config key `win_rates.api_key_env`): the "
        "win_rates backend reads its API key from it; export it, or name another variable there"
    )
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        check_api_keys(API, ["judge"], {"OPENAI_API_KEY": ""})
    check_api_keys(API, ["judge", "win_rates"], {"OPENAI_API_KEY": "k", "MY_JUDGE_KEY": "k"})


# --- through Snakemake ------------------------------------------------------------------------


def snakemake(tmp_path, overlay, *args, env=None):
    """Snakemake on the default config plus `overlay`, in a scratch working directory."""
    shutil.copytree(REPO / "config", tmp_path / "config", dirs_exist_ok=True)
    path = tmp_path / "overlay.yaml"
    path.write_text(overlay)
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--configfile", str(path), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        (
            "sft: {lr: 1e-4}\n",
            "config key `sft.lr`: '1e-4' is not of type 'number' (YAML 1.1",
        ),
        (
            "dpo: {per_dataset: {persuasiv: {beta: 0.01}}}\n",
            "config key `dpo.per_dataset.persuasiv`: 'persuasiv' is not a preference set",
        ),
        ("win_rates: {baseline: bse}\n", "config key `win_rates.baseline`: 'bse' is not a model"),
        (
            "base_model: {architecture: {num_attention_heads: 4, num_key_value_heads: 3}}\n",
            "config key `base_model.architecture.num_attention_heads`: 4 is not a multiple",
        ),
        (
            "data: {prefs: {source: local}}\n",
            "config key `data.prefs.path`: `data.prefs` has source local but no path",
        ),
    ],
)
def test_the_workflow_refuses_at_parse_time(tmp_path, overlay, message):
    proc = snakemake(tmp_path, overlay, "-n")
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert "Job stats" not in proc.stdout + proc.stderr  # no DAG was built


def test_a_real_run_without_its_key_stops_before_the_first_job(tmp_path):
    overlay = "judge: {backend: openai, api_key_env: STYLIZED_DPO_TEST_KEY}\n"
    env = {"STYLIZED_DPO_TEST_KEY": ""}
    target = ["results/judge/base.jsonl"]
    dry = snakemake(tmp_path, overlay, "-n", *target, env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr  # a dry run needs no key
    real = snakemake(tmp_path, overlay, "--cores", "1", *target, env=env)
    assert real.returncode != 0
    assert (
        "environment variable STYLIZED_DPO_TEST_KEY is not set (config key `judge.api_key_env`)"
        in real.stdout + real.stderr
    )
    assert not (tmp_path / "results").exists()  # not even the world was built
    # a run whose jobs call no API needs no key, whatever the config's backends
    world = snakemake(tmp_path, overlay, "--cores", "1", "results/world/world.json", env=env)
    assert world.returncode == 0, world.stdout + world.stderr
    assert (tmp_path / "results" / "world" / "world.json").exists()
