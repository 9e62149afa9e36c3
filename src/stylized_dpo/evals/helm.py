"""HELM (crfm-helm) on the five core scenarios, offline, one model at a time, then one summary.

Steps (each a Snakemake rule, see rules/helm.smk):
1. `helm_run.run_model`: write a local HELM config folder for one model directory (model metadata, a
   deployment served by `stylized_dpo.evals.helm_client.LogprobHuggingFaceClient`, a tokenizer),
   check and link the scenario data and the offline stand-ins (the world's, or HELM's own files
   pre-placed for `data: local`) into a fresh `benchmark_output/`, and call `helm-run` on the
   core run entries with `data_augmentation` (canonical: MildMix robustness, dialect / gender /
   race-name fairness perturbations), fully offline. HELM runs in the run folder on relative
   paths, and absolute paths it writes are rewritten, so results can be moved.
2. `helm_summary.summarize`: gather every model's runs into one suite, call `helm-summarize`
   with HELM's classic schema, and turn the "Core scenarios" tables (accuracy, calibration,
   robustness, fairness) into `summary.csv` (`model,family,scenario,metric,value,note`).

HELM lives in its own environment (its pins clash with the main stack), so HELM runs as a
subprocess; this module (the configuration, run entries, input files and job size) and its
`helm_run` and `helm_summary` import only the standard library and PyYAML, and run in either one.

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

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from stylized_dpo.config import Section, null_is_default
from stylized_dpo.records import HELM_SCENARIOS, MMLU_CORE_SUBJECTS, PUNKT_FILES

DEPLOYMENT_PREFIX = "stylized-dpo"
SUITE = "stylized-dpo"
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


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise HelmError(f"{path} is missing") from e


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
