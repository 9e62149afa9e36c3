"""HELM (crfm-helm) on the five core scenarios, offline, one model at a time, then one summary.

Steps (each a Snakemake rule, see rules/helm.smk):
1. `run_model`: write a local HELM config folder for one model directory (model metadata, a
   deployment served by `stylized_dpo.evals.helm_client.LogprobHuggingFaceClient`, a tokenizer),
   check and link the scenario data and the offline stand-ins (the world's, or HELM's own files
   pre-placed for `data: local`) into a fresh `benchmark_output/`, and call `helm-run` on the
   core run entries with `data_augmentation` (canonical: MildMix robustness, dialect / gender /
   race-name fairness perturbations), fully offline. HELM runs in the run folder on relative
   paths, and absolute paths it writes are rewritten, so results can be moved.
2. `summarize`: gather every model's runs into one suite, call `helm-summarize` with HELM's
   classic schema, and turn the "Core scenarios" tables (accuracy, calibration, robustness,
   fairness) into `summary.csv` (`model,family,scenario,metric,value,note`).

HELM lives in its own environment (its pins clash with the main stack), so HELM runs as a
subprocess; this module imports only the standard library and PyYAML, and runs in either one.

Run entries follow HELM's core scenario entries (`run_specs_core_scenarios.conf`): MMLU is one
run per subject (`helm.mmlu_subjects`, HELM's core five), merged by helm-summarize into the MMLU
column of the core table, so its value is the mean of the subjects' means. HELM's core
set has NaturalQuestions both closed-book and open-book (`mode=openbook_longans`); the paper
reports one NaturalQuestions F1, and its values (0.62 for Qwen2.5-0.5B) are open-book values, so
the default is `openbook_longans` (config `helm.natural_qa_mode`). HellaSwag uses
`multiple_choice_separate_original` as in HELM's entry; HELM 0.5.16 computes no ECE for it, so
its calibration cell is computed here from HELM's per-instance `max_prob` and `exact_match`
exactly as HELM's `ece_10_bin` (10 equal-mass bins), and marked so in the note.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from stylized_dpo.config import Section, null_is_default
from stylized_dpo.io import atomic_path
from stylized_dpo.records import (
    HELM_FAMILIES,
    HELM_SCENARIOS,
    HELM_SUMMARY_COLUMNS,
    MMLU_CORE_SUBJECTS,
    PUNKT_FILES,
)

DEPLOYMENT_PREFIX = "stylized-dpo"
CLIENT_CLASS = "stylized_dpo.evals.helm_client.LogprobHuggingFaceClient"
PLUGIN = "stylized_dpo.evals.helm_client"
SUITE = "stylized-dpo"
ECE_METRIC = "ECE (10-bin)"
"""HELM's display name of `ece_10_bin` (the `metric` column uses HELM's display names)."""
SUMMARY_GROUP = "core_scenarios"
"""The classic schema's "Core scenarios" group: the leaderboard whose win rates the paper uses."""

# HELM run-group names (schema_classic.yaml) -> this project's scenario keys.
GROUP_TO_SCENARIO = {
    "mmlu": "mmlu",
    "boolq": "boolq",
    "natural_qa_openbook_longans": "natural_qa",
    "natural_qa_closedbook": "natural_qa",
    "quac": "quac",
    "hellaswag": "hellaswag",
}
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
DATA_MODES = ("world", "local", "download")
PERTURBATIONS = {"canonical": 4, "robustness": 1, "fairness": 3}
"""Perturbations per evaluation instance of each `data_augmentation` (HELM's run expander:
robustness = MildMix; fairness = dialect, gender, person names; canonical = both)."""
FAIRNESS_FILES = (
    "perturbations/dialect/SAE_to_AAVE_mapping.json",
    "perturbations/person_name/data/person_names.txt",
)


class HelmError(RuntimeError):
    """helm-run or helm-summarize failed, or their output is not what this module expects."""


@dataclass(frozen=True)
class HelmConfig(Section):
    """Config section `helm` (the values that change HELM's results are rule params)."""

    section: ClassVar[str] = "helm"

    executable_dir: str = ".venv-helm/bin"
    """Folder holding `helm-run` and `helm-summarize`; "" means PATH."""
    scenarios: tuple[str, ...] = HELM_SCENARIOS
    """Core scenarios to run (keys of HELM_SCENARIOS)."""
    mmlu_subjects: tuple[str, ...] = MMLU_CORE_SUBJECTS
    """MMLU subjects, one HELM run each (HELM's core set by default)."""
    max_eval_instances: int = 40
    """Evaluation instances per scenario (HELM's `--max-eval-instances`)."""
    data_augmentation: str = "canonical"
    """HELM data augmentation (canonical: robustness + fairness perturbations)."""
    num_train_trials: int = 1
    """Draws of in-context examples (HELM's `--num-train-trials`; HELM's classic runs used 3)."""
    max_train_instances: int | None = None
    """In-context examples per prompt; None keeps each run spec's value (5 for these)."""
    max_output_tokens: dict[str, int] = null_is_default(dict)
    """Per-scenario cap on generated tokens (HELM's `num_output_tokens` run expander); empty keeps
    HELM's own limits (NaturalQuestions 300, QuAC 100, BoolQ 5, MMLU 1). The tiny world's answers
    are under 20 tokens, and a model that never emits a newline would otherwise generate the
    full 300 tokens for every NaturalQuestions request."""
    natural_qa_mode: str = "openbook_longans"
    """`openbook_longans` or `closedbook` (HELM's core set has both)."""
    plain_prompt_models: tuple[str, ...] = ("base",)
    """Models prompted without the chat template (base models); others get it."""
    device: str = "cpu"
    """Torch device of the Hugging Face client (`cpu`, `cuda`, or `auto`)."""
    num_threads: int = 1
    """HELM request threads (`-n`): the requests in flight at once."""
    batch_size: int = 1
    """Requests the client serves in one forward pass (`helm_client`); needs
    `num_threads >= batch_size`, since HELM sends one request per thread."""
    requests_per_s: float = 1.0
    """Served requests per second, for the job's runtime estimate (`benchmarks/bench_helm.py`
    measures it for a model and batch size)."""
    data: str = "world"
    """`world`: offline, on scenario files built from the tiny world; `local`: offline, on HELM's
    own files pre-placed at `data_path`; `download`: HELM fetches the real benchmarks and
    perturbation resources itself (needs the network)."""
    data_path: str | None = None
    """`data: local`: a folder in HELM's download layout (`scenarios/<scenario>/data/...`,
    `perturbations/...`) plus `nltk_data/` (see `local_data_files`)."""

    def __post_init__(self) -> None:
        if self.data not in DATA_MODES:
            raise ValueError(f"helm.data must be one of {DATA_MODES}, got {self.data!r}")
        if self.data == "local" and not self.data_path:
            raise ValueError("helm.data: local needs helm.data_path (a folder of HELM's files)")
        if self.data_augmentation not in PERTURBATIONS:
            raise ValueError(
                f"helm.data_augmentation must be one of {sorted(PERTURBATIONS)}, "
                f"got {self.data_augmentation!r}"
            )
        if self.batch_size < 1 or self.num_threads < self.batch_size:
            raise ValueError(
                f"helm.batch_size ({self.batch_size}) must be between 1 and helm.num_threads "
                f"({self.num_threads}): HELM sends one request per thread"
            )
        if self.requests_per_s <= 0:
            raise ValueError(f"helm.requests_per_s must be positive, got {self.requests_per_s}")
        unknown = set(self.scenarios) - set(HELM_SCENARIOS)
        if unknown:
            raise ValueError(f"unknown HELM scenarios {sorted(unknown)}; known: {HELM_SCENARIOS}")
        if self.natural_qa_mode not in ("openbook_longans", "closedbook"):
            raise ValueError(
                f"natural_qa_mode must be openbook_longans or closedbook, "
                f"got {self.natural_qa_mode!r}"
            )
        if not self.mmlu_subjects or len(set(self.mmlu_subjects)) != len(self.mmlu_subjects):
            raise ValueError(f"helm.mmlu_subjects must be distinct names, got {self.mmlu_subjects}")
        bad = [s for s in self.mmlu_subjects if not re.fullmatch(r"[a-z_]+", s)]
        if bad:
            raise ValueError(f"helm.mmlu_subjects: not an MMLU subject name: {bad}")
        unknown = set(self.max_output_tokens) - set(HELM_SCENARIOS)
        if unknown:
            raise ValueError(f"max_output_tokens names unknown scenarios {sorted(unknown)}")
        if self.max_eval_instances < 1 or self.num_train_trials < 1:
            raise ValueError("max_eval_instances and num_train_trials must be positive")

    def executable(self, name: str) -> str:
        if not self.executable_dir:
            found = shutil.which(name)
            if found is None:
                raise HelmError(f"{name} is not on PATH (config helm.executable_dir is empty)")
            return found
        path = Path(self.executable_dir) / name
        if not path.exists():
            raise HelmError(f"{path} does not exist (config helm.executable_dir)")
        return str(path.resolve())


# ---- job size ------------------------------------------------------------------------------------

MMLU_TEST_SIZES = {
    "abstract_algebra": 100,
    "college_chemistry": 100,
    "computer_security": 100,
    "econometrics": 114,
    "us_foreign_policy": 100,
}
"""Test questions of the core subjects in MMLU: HELM evaluates at most these many."""
CHOICES = {"hellaswag": 4}
"""Requests per instance: `multiple_choice_separate` scores each of HellaSwag's 4 endings."""
STARTUP_S = 120.0
PER_RUN_S = 60.0
"""Allowances beside serving: HELM's start and model load, and each run's scenario loading,
perturbation and metrics (a few seconds each on the miniature; real NaturalQuestions pages
are larger)."""
HELM_BASE_MB = 1000
"""helm-run's own resident memory, rounded up: `benchmarks/bench_helm.py` measured 633 MB with
the miniature's model, and 1,549 MB with 664 MB of weights (Qwen2.5-0.5B's widths, 2 layers),
i.e. ~1.4x the weights on top, which the estimate's 2x covers."""
UNKNOWN_MODEL_MB = 2000
"""Weights assumed while a model does not exist yet (dry runs): Qwen2.5-0.5B in fp32. The job
itself is sized from the weights it reads."""
REAL_DATA_MB = 4000
"""Allowance for the real benchmarks' raw files as HELM reads them (local or download)."""


def expected_requests(config: HelmConfig) -> dict[str, int]:
    """Requests per scenario, at most: instances x trials x (1 + perturbations) x choices.

    Instances are `max_eval_instances` per run (MMLU: per subject, capped by the subject's test
    set); perturbations that leave an instance unchanged are skipped by HELM, so this bounds
    the real count from above.
    """
    per_instance = config.num_train_trials * (1 + PERTURBATIONS[config.data_augmentation])
    out = {}
    for scenario in config.scenarios:
        if scenario == "mmlu":
            instances = sum(
                min(config.max_eval_instances, MMLU_TEST_SIZES.get(s, config.max_eval_instances))
                for s in config.mmlu_subjects
            )
        else:
            instances = config.max_eval_instances
        out[scenario] = instances * per_instance * CHOICES.get(scenario, 1)
    return out


def runtime_min_estimate(config: HelmConfig) -> int:
    """Wall-clock minutes of one model's helm-run: serving at `requests_per_s` plus allowances,
    with a quarter on top."""
    n_runs = len(run_entries("m", config))
    serving = sum(expected_requests(config).values()) / config.requests_per_s
    return math.ceil(1.25 * (STARTUP_S + n_runs * PER_RUN_S + serving) / 60)


def mem_mb_estimate(model_dir: str | Path, config: HelmConfig) -> int:
    """Host memory of one model's helm-run: HELM, twice the weights (loading), the data."""
    weights = [f.stat().st_size for f in Path(model_dir).glob("*.safetensors")]
    weights_mb = sum(weights) / 2**20 if weights else UNKNOWN_MODEL_MB
    data_mb = REAL_DATA_MB if config.data != "world" else 0
    return math.ceil(HELM_BASE_MB + 2 * weights_mb + data_mb)


def deployment_name(model: str) -> str:
    """One HELM deployment per model: HELM's request cache is keyed by deployment and prompt."""
    return f"{DEPLOYMENT_PREFIX}/{model}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise HelmError(f"{path} is missing") from e


def model_entries(
    model: str, model_dir: str | Path, config: HelmConfig, relative_to: str | Path | None = None
) -> tuple[dict, dict, dict]:
    """(model metadata, deployment, tokenizer config) entries of one local model directory."""
    path = Path(model_dir).resolve()
    where = str(path) if relative_to is None else os.path.relpath(path, Path(relative_to).resolve())
    model_config = _read_json(path / "config.json")
    tok_config = _read_json(path / "tokenizer_config.json")
    name = deployment_name(model)
    max_len = int(model_config.get("max_position_embeddings") or tok_config["model_max_length"])
    eos = tok_config.get("eos_token")
    eos = eos.get("content") if isinstance(eos, dict) else eos
    n_params = _count_parameters(path)
    metadata = {
        "name": name,
        "display_name": model,
        "description": f"Local checkpoint {path.name} (stylized-dpo)",
        "creator_organization_name": "stylized-dpo",
        "access": "open",
        "release_date": datetime.date(2025, 1, 1),  # HELM wants a date, not a string
        "tags": ["TEXT_MODEL_TAG", "FULL_FUNCTIONALITY_TEXT_MODEL_TAG"],
    }
    if n_params:
        metadata["num_parameters"] = n_params
    deployment = {
        "name": name,
        "model_name": name,
        "tokenizer_name": name,
        "max_sequence_length": max_len,
        "client_spec": {
            "class_name": CLIENT_CLASS,
            "args": {
                "pretrained_model_name_or_path": where,
                "device": config.device,
                "apply_chat_template": model not in config.plain_prompt_models,
                **({"batch_size": config.batch_size} if config.batch_size > 1 else {}),
            },
        },
    }
    tokenizer = {
        "name": name,
        "tokenizer_spec": {
            "class_name": "helm.tokenizers.huggingface_tokenizer.HuggingFaceTokenizer",
            "args": {"pretrained_model_name_or_path": where},
        },
        "end_of_text_token": eos or "",
        "prefix_token": "",
    }
    return metadata, deployment, tokenizer


def _count_parameters(path: Path) -> int | None:
    """Parameter count from the safetensors header (no torch needed); None if not readable."""
    total = 0
    files = sorted(path.glob("*.safetensors"))
    for file in files:
        with open(file, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        for key, info in header.items():
            if key == "__metadata__":
                continue
            count = 1
            for dim in info["shape"]:
                count *= dim
            total += count
    return total or None


def write_local_config(
    models: dict[str, str | Path],
    out_dir: str | Path,
    config: HelmConfig,
    relative_to: str | Path | None = None,
) -> Path:
    """HELM's `--local-path` folder (model_metadata/model_deployments/tokenizer_configs.yaml).

    With `relative_to` (the folder HELM runs in), model paths are written relative to it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = [model_entries(m, d, config, relative_to) for m, d in models.items()]
    files = {
        "model_metadata.yaml": {"models": [e[0] for e in entries]},
        "model_deployments.yaml": {"model_deployments": [e[1] for e in entries]},
        "tokenizer_configs.yaml": {"tokenizer_configs": [e[2] for e in entries]},
    }
    for name, content in files.items():
        with atomic_path(out / name) as tmp:
            tmp.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return out


def run_entries(model: str, config: HelmConfig) -> list[str]:
    """HELM run-entry descriptions of the configured core scenarios for one model."""
    m = deployment_name(model)
    args = f"model={m},data_augmentation={config.data_augmentation}"
    if config.max_train_instances is not None:
        args += f",max_train_instances={config.max_train_instances}"
    by_scenario = {
        "mmlu": [f"mmlu:subject={subject}" for subject in config.mmlu_subjects],
        "boolq": ["boolq"],
        "natural_qa": [f"natural_qa:mode={config.natural_qa_mode}"],
        "quac": ["quac"],
        "hellaswag": ["commonsense:dataset=hellaswag,method=multiple_choice_separate_original"],
    }
    entries = []
    for s in config.scenarios:
        for head in by_scenario[s]:
            entry = head + ("," if ":" in head else ":") + args
            if s in config.max_output_tokens:
                entry += f",num_output_tokens={int(config.max_output_tokens[s])}"
            entries.append(entry)
    return entries


def local_data_files(config: HelmConfig) -> list[str]:
    """The files HELM reads offline for the configured run entries, relative to the data folder.

    HELM's download layout (each scenario's `ensure_file_downloaded` targets, which it skips when
    present), its perturbation resources, and nltk's punkt parameters; `world` data has the same
    layout. MMLU's `val/` and `auxiliary_train/` files are optional to HELM, so not listed.
    """
    by_scenario = {
        "mmlu": [
            f"scenarios/mmlu/data/{split}/{subject}_{split}.csv"
            for subject in config.mmlu_subjects
            for split in ("dev", "test")
        ],
        "boolq": [f"scenarios/boolq/data/{f}" for f in ("train", "dev", "boolq_perturbed.jsonl")],
        "natural_qa": [f"scenarios/natural_qa/data/nq-dev-{k:02d}.jsonl.gz" for k in range(5)],
        "quac": ["scenarios/quac/data/train.json", "scenarios/quac/data/val.json"],
        "hellaswag": [f"scenarios/hellaswag/data/hellaswag_{s}.jsonl" for s in ("train", "val")],
    }
    files = [f for scenario in config.scenarios for f in by_scenario[scenario]]
    if config.data_augmentation in ("canonical", "fairness"):
        files += FAIRNESS_FILES
    files += [f"nltk_data/tokenizers/punkt_tab/english/{name}" for name in PUNKT_FILES]
    return files


def check_local_data(data_dir: str | Path, config: HelmConfig) -> None:
    """Raise naming every file HELM would need and `data_dir` lacks (before any model loads)."""
    root = Path(data_dir)
    missing = [f for f in local_data_files(config) if not (root / f).is_file()]
    if missing:
        raise HelmError(
            f"{root}: {len(missing)} of HELM's files are missing (HELM's download layout, "
            "config helm.data_path):\n  " + "\n  ".join(missing)
        )


def _link_tree(src: Path, dst: Path) -> None:
    """`dst` mirrors `src` with real folders and per-file links: HELM writes caches beside its
    inputs (NaturalQuestions' `*-instances.jsonl`), and pre-placed data may be read-only."""
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.suffix == ".lock":
            continue  # HELM's download locks (a copied benchmark_output has them): HELM opens
            # them for writing and refuses links
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path.resolve())


def helm_env(offline: bool, threads: int) -> dict[str, str]:
    """The environment of a HELM command: offline with local data, or HELM's own downloads.

    Offline, nltk's data is `nltk_data/` in the command's working directory.
    """
    env = dict(os.environ)
    if offline:
        env.update(OFFLINE_ENV)
        env["NLTK_DATA"] = "nltk_data"
    env["OMP_NUM_THREADS"] = str(threads)
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def make_relocatable(root: str | Path, prefixes: dict[str, str]) -> list[str]:
    """Rewrite absolute paths in the text files under `root` (HELM's logs and JSON echo them).

    `prefixes` maps an absolute folder to what replaces it (longest first); returns the files
    changed, relative to `root`.
    """
    base = Path(root)
    order = sorted(prefixes, key=len, reverse=True)
    changed = []
    for path in sorted(base.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if not any(prefix.encode() in data for prefix in order):
            continue
        text = data.decode("utf-8", errors="surrogateescape")
        for prefix in order:
            text = text.replace(prefix, prefixes[prefix])
        with atomic_path(path) as tmp:
            tmp.write_bytes(text.encode("utf-8", errors="surrogateescape"))
        changed.append(str(path.relative_to(base)))
    return changed


def _relocate(out: Path, config: HelmConfig) -> None:
    """Absolute paths in `out` -> relative to `out`, or named by what they are: the working
    directory, HELM's environment (its warnings and tracebacks name its files)."""
    folders = [(Path.cwd(), "<workdir>"), (out, ".")]
    helm_env_dir = Path(config.executable("helm-run")).parent.parent
    if (helm_env_dir / "pyvenv.cfg").is_file():  # a virtual environment, not e.g. /usr
        folders.append((helm_env_dir, "<helm-env>"))
    prefixes = {}
    for folder, name in folders:
        prefixes[str(folder.absolute())] = name
        prefixes[str(folder.resolve())] = name
    make_relocatable(out, prefixes)


def _run(cmd: Sequence[str], env: dict[str, str], log: Path, cwd: Path) -> float:
    """Run a HELM command in `cwd`, its output appended to `log`; returns the wall time."""
    print("$", " ".join(cmd), flush=True)
    start = time.monotonic()
    with open(log, "a", encoding="utf-8") as f:
        proc = subprocess.run(
            cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, check=False
        )
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        raise HelmError(
            f"{cmd[0]} exited with {proc.returncode}; last lines of {log}:\n" + "\n".join(tail)
        )
    return elapsed


def run_model(
    model: str,
    model_dir: str | Path,
    data_dir: str | Path | None,
    out_dir: str | Path,
    config: HelmConfig,
    threads: int = 1,
) -> dict[str, Any]:
    """helm-run on one model; output in `out_dir` (config/, benchmark_output/runs/, helm-run.log).

    `data_dir` holds HELM's files in its download layout (`write_helm_scenarios` for the world,
    or pre-placed ones for `data: local`; see `local_data_files`), run offline; None lets HELM
    download the real benchmarks and perturbation files itself. helm-run runs in `out_dir` with
    relative paths, the inputs linked in and removed afterwards, so the output does not name
    the machine's folders. Returns a small record (run names, wall time, requests) also
    written to `out_dir/run.json`.
    """
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    data = Path(data_dir) if data_dir is not None else None
    if data is not None:
        check_local_data(data, config)
    out.mkdir(parents=True)
    bench = out / "benchmark_output"
    linked = [bench / "scenarios", bench / "perturbations", out / "nltk_data"]
    if data is not None:
        _link_tree(data / "scenarios", linked[0])
        _link_tree(data / "perturbations", linked[1])
        # nltk refuses files that resolve outside NLTK_DATA; punkt's parameters are small.
        shutil.copytree(data / "nltk_data", linked[2])
    write_local_config({model: model_dir}, out / "config", config, relative_to=out)
    entries = run_entries(model, config)
    cmd = [
        config.executable("helm-run"),
        "--run-entries", *entries,
        "--suite", SUITE,
        "--max-eval-instances", str(config.max_eval_instances),
        "--num-train-trials", str(config.num_train_trials),
        "--local-path", "config",
        "--output-path", "benchmark_output",
        "--plugins", PLUGIN,
        "--num-threads", str(config.num_threads),
        "--disable-cache",
        "--exit-on-error",
    ]  # fmt: skip
    log = out / "helm-run.log"
    seconds = _run(cmd, helm_env(data is not None, threads), log, cwd=out)
    for path in linked:
        if path.exists():
            shutil.rmtree(path)  # inputs (and HELM's caches of them), not results
    _relocate(out, config)
    runs = [p.name for p in _run_dirs(bench / "runs" / SUITE)]
    if len(runs) != len(entries):
        raise HelmError(f"expected {len(entries)} runs in {bench / 'runs' / SUITE}, got {runs}")
    n_requests = sum(_count_requests(bench / "runs" / SUITE / run) for run in runs)
    record = {
        "model": model,
        "runs": runs,
        "entries": entries,
        "seconds": round(seconds, 1),
        "requests": n_requests,
        "requests_per_s": round(n_requests / seconds, 3) if seconds else None,
    }
    with atomic_path(out / "run.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"helm-run {model}: {len(runs)} runs in {seconds:.1f} s", flush=True)
    return record


def _count_requests(run: Path) -> int:
    """Requests HELM sent for one run (`scenario_state.json`'s request states)."""
    state = _read_json(run / "scenario_state.json")
    return len(state.get("request_states", []))


def _run_dirs(suite: Path) -> list[Path]:
    """A suite's run folders (HELM also keeps an `eval_cache/` folder there)."""
    return sorted(p for p in suite.iterdir() if (p / "run_spec.json").is_file())


# ---- summary ------------------------------------------------------------------------------------


def schema_path(config: HelmConfig) -> str:
    """HELM's classic schema file, found next to the helm-run executable's package."""
    helm_python = Path(config.executable("helm-run")).parent / "python"
    code = (
        "from importlib import resources;"
        "print(resources.files('helm.benchmark.static') / 'schema_classic.yaml')"
    )
    python = str(helm_python) if helm_python.exists() else sys.executable
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise HelmError(f"cannot locate HELM's schema_classic.yaml: {out.stderr.strip()}")
    return out.stdout.strip()


def summarize(
    run_dirs: dict[str, str | Path],
    model_dirs: dict[str, str | Path],
    out_dir: str | Path,
    summary_csv: str | Path,
    config: HelmConfig,
) -> list[dict[str, str]]:
    """One suite from every model's runs, `helm-summarize`, then `summary.csv`.

    HELM's own output stays under `out_dir/benchmark_output/runs/<suite>/` (groups/*.json, ...).
    """
    out = Path(out_dir)
    bench = out / "benchmark_output"
    suite_dir = bench / "runs" / SUITE
    if suite_dir.exists():
        shutil.rmtree(suite_dir)
    suite_dir.mkdir(parents=True)
    for model, run_dir in run_dirs.items():
        src = Path(run_dir) / "benchmark_output" / "runs" / SUITE
        if not src.is_dir():
            raise HelmError(f"{src} is missing: helm-run for {model} did not finish")
        for run in _run_dirs(src):
            shutil.copytree(run, suite_dir / run.name)
    write_local_config(model_dirs, out / "config", config, relative_to=out)
    cmd = [
        config.executable("helm-summarize"),
        "--suite", SUITE,
        "--output-path", "benchmark_output",
        "--local-path", "config",
        "--schema-path", schema_path(config),
        # One thread: Mako compiles templates with `ast`, and concurrent compiles in CPython 3.11
        # fail at random ("AST constructor recursion depth mismatch", seen here in 1 of 5 runs).
        "--num-threads", "1",
    ]  # fmt: skip
    log = out / "helm-summarize.log"
    if log.exists():
        log.unlink()
    _run(cmd, helm_env(True, 1), log, cwd=out)
    _relocate(out, config)
    rows = summary_rows(suite_dir, list(model_dirs), config.scenarios)
    write_summary_csv(summary_csv, rows)
    return rows


def _scenario_of_header(cell: dict, group_names: dict[str, str]) -> str | None:
    run_group = (cell.get("metadata") or {}).get("run_group")
    group = group_names.get(run_group or "")
    return GROUP_TO_SCENARIO.get(group or "")


def summary_rows(
    suite_dir: str | Path, models: Sequence[str], scenarios: Sequence[str]
) -> list[dict[str, str]]:
    """Rows of summary.csv from HELM's `groups/core_scenarios.json` and per-instance stats."""
    suite = Path(suite_dir)
    schema = _read_json(suite / "schema.json")
    # Header cells name a run group by its short display name.
    group_names: dict[str, str] = {}
    for group in schema.get("run_groups", []):
        for key in ("short_display_name", "display_name", "name"):
            if group.get(key):
                group_names.setdefault(group[key], group["name"])
    tables = json.loads((suite / "groups" / f"{SUMMARY_GROUP}.json").read_text(encoding="utf-8"))
    display_to_model = {m: m for m in models}
    values: dict[tuple[str, str, str], tuple[str, str, str]] = {}
    for table in tables:
        family = table.get("name") or table["title"].lower()
        if family not in HELM_FAMILIES:
            continue
        header = table["header"]
        for row in table["rows"]:
            model = display_to_model.get(row[0]["value"])
            if model is None:
                raise HelmError(
                    f"{suite}/groups/{SUMMARY_GROUP}.json: row {row[0]['value']!r} "
                    f"is not one of the models {list(models)}"
                )
            for cell_head, cell in zip(header[1:], row[1:], strict=True):
                if cell_head["value"] == "Mean win rate":
                    scenario, metric = "mean_win_rate", "mean_win_rate"
                else:
                    scenario = _scenario_of_header(cell_head, group_names)
                    if scenario not in scenarios:
                        continue
                    meta = cell_head.get("metadata") or {}
                    metric = meta.get("metric", cell_head["value"])
                    if meta.get("perturbation"):
                        metric += f" ({meta['perturbation']})"
                value = cell.get("value")
                note = ""
                if value is None:
                    note = f"not reported by HELM: {cell.get('description') or 'no value'}"
                    if family == "calibration":
                        note += _no_ece_reason(suite, model, scenario)
                key = (model, family, scenario)
                if key in values and values[key][1] != "" and value is None:
                    continue  # a second column for the same scenario (e.g. both NQ modes)
                values[key] = (metric, "" if value is None else repr(float(value)), note)
    _fill_hellaswag_calibration(suite, models, scenarios, values)
    rows = []
    for model in models:
        for family in HELM_FAMILIES:
            for scenario in ("mean_win_rate", *scenarios):
                metric, value, note = values.get(
                    (model, family, scenario),
                    (
                        "",
                        "",
                        f"not reported: no {family} column for {scenario} in HELM's "
                        f"{SUMMARY_GROUP} table",
                    ),
                )
                if family == "calibration" and scenario == "mean_win_rate" and value:
                    note = _calibration_mwr_note(values, model, scenarios)
                rows.append(
                    {
                        "model": model,
                        "family": family,
                        "scenario": scenario,
                        "metric": metric,
                        "value": value,
                        "note": note,
                    }
                )
    return rows


def _no_ece_reason(suite: Path, model: str, scenario: str) -> str:
    """Why HELM left a generation scenario's ECE out (it needs some non-zero token log-prob)."""
    prefixes = {"mmlu": "mmlu:", "boolq": "boolq:", "natural_qa": "natural_qa:", "quac": "quac:"}
    runs = find_runs(suite, model, prefixes.get(scenario, scenario))  # MMLU: one per subject
    if not runs:
        return ""
    logprobs = [
        stat["sum"]
        for run in runs
        for item in json.loads((run / "per_instance_stats.json").read_text(encoding="utf-8"))
        for stat in item["stats"]
        if stat["name"]["name"] == "logprob" and not item.get("perturbation")
    ]
    if logprobs and all(lp == 0 for lp in logprobs):
        return (
            f" (HELM skips ECE when every answer has log-prob 0: here all {len(logprobs)} "
            "answers are empty, the model ended its turn at once)"
        )
    return ""


def _calibration_mwr_note(values: dict, model: str, scenarios: Sequence[str]) -> str:
    outside = [
        s
        for s in scenarios
        if values.get((model, "calibration", s), ("", "", ""))[2].startswith("computed")
    ]
    if not outside:
        return ""
    return (
        f"HELM's win rate over the scenarios HELM reports ECE for; excludes "
        f"{', '.join(outside)} (ECE computed here, see its row)"
    )


def _fill_hellaswag_calibration(
    suite: Path, models: Sequence[str], scenarios: Sequence[str], values: dict
) -> None:
    """HELM 0.5.16 gives no ECE for multiple_choice_separate (HellaSwag): compute it likewise."""
    if "hellaswag" not in scenarios:
        return
    for model in models:
        key = (model, "calibration", "hellaswag")
        if key in values and values[key][1] != "":
            continue  # HELM reported it
        run = _find_run(suite, model, "commonsense:dataset=hellaswag")
        if run is None:
            values[key] = (ECE_METRIC, "", "not reported: no HellaSwag run for this model")
            continue
        ece = ece_from_per_instance(run / "per_instance_stats.json", split="valid")
        if ece is None:
            values[key] = (ECE_METRIC, "", "not reported: no max_prob/exact_match per instance")
            continue
        values[key] = (
            ECE_METRIC,
            repr(ece),
            "computed here from HELM's per-instance max_prob and exact_match (10 equal-mass bins, "
            "as HELM's ece_10_bin); HELM 0.5.16 reports no ECE for multiple_choice_separate",
        )


def find_runs(suite: Path, model: str, prefix: str) -> list[Path]:
    """The run folders of `model` in a suite whose names start with `prefix` (MMLU: one per
    subject). Run names put their first argument after ":" (`boolq:model=...,data_...`)."""
    tag = f"model={deployment_name(model).replace('/', '_')}"
    return [
        run
        for run in sorted(suite.iterdir())
        if run.is_dir() and run.name.startswith(prefix) and tag in re.split(r"[:,]", run.name)
    ]


def _find_run(suite: Path, model: str, prefix: str) -> Path | None:
    runs = find_runs(suite, model, prefix)
    return runs[0] if runs else None


def per_instance_pairs(path: str | Path, split: str) -> dict[int, list[tuple[float, float]]]:
    """(max_prob, exact_match) of unperturbed instances in `split`, per train trial."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    out: dict[int, list[tuple[float, float]]] = {}
    for item in data:
        if item.get("perturbation"):
            continue
        stats = {}
        for stat in item["stats"]:
            name = stat["name"]
            if name.get("split") != split or name.get("perturbation"):
                continue
            if stat.get("count", 0) > 0:
                stats[name["name"]] = stat["sum"] / stat["count"]
        if "max_prob" in stats and "exact_match" in stats:
            out.setdefault(item.get("train_trial_index", 0), []).append(
                (stats["max_prob"], stats["exact_match"])
            )
    return out


def ece_from_per_instance(path: str | Path, split: str) -> float | None:
    """Mean over train trials of `ece_10_bin` on unperturbed instances, as HELM computes it."""
    trials = per_instance_pairs(path, split)
    if not trials:
        return None
    eces = [
        ece_equal_mass([p for p, _ in pairs], [int(c) for _, c in pairs])
        for pairs in trials.values()
    ]
    return sum(eces) / len(eces)


def ece_equal_mass(probs: Sequence[float], correct: Sequence[int], num_bins: int = 10) -> float:
    """Top-label ECE with equal-mass bins (HELM's `ece_10_bin`, via the `calibration` package).

    Bins: sort the probabilities, cut them into `num_bins` near-equal groups, put each boundary
    halfway between neighbouring groups, and assign each probability to the first boundary at
    or above it; ECE = sum over bins of (bin share) * |mean probability - mean correctness|.
    """
    if len(probs) != len(correct) or not probs:
        raise ValueError("probs and correct must be non-empty and equally long")
    ordered = sorted(probs)
    k = min(num_bins, len(ordered))
    size, extra = divmod(len(ordered), k)
    groups, start = [], 0
    for i in range(k):
        end = start + size + (1 if i < extra else 0)
        groups.append(ordered[start:end])
        start = end
    bounds = sorted({(groups[i][-1] + groups[i + 1][0]) / 2 for i in range(k - 1)} | {1.0})
    bins: dict[int, list[tuple[float, int]]] = {}
    for p, c in zip(probs, correct, strict=True):
        bins.setdefault(bisect_left(bounds, p), []).append((p, c))
    n = len(probs)
    return sum(
        len(b) / n * abs(sum(p for p, _ in b) / len(b) - sum(c for _, c in b) / len(b))
        for b in bins.values()
    )


def write_summary_csv(path: str | Path, rows: Sequence[dict[str, str]]) -> None:
    import csv
    import io

    for row in rows:
        if row["value"] == "" and not row["note"]:
            raise HelmError(f"empty value without a note: {row}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HELM_SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
