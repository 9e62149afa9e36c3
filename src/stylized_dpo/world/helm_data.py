"""HELM's five core scenarios as local data files, built from the tiny world's facts.

`write_helm_scenarios` writes each scenario's raw files in the exact layout and schema that
crfm-helm's own scenario classes read (HELM skips a download when the file already exists), under
`<out_dir>/scenarios/<scenario>/data/`:

- mmlu: `dev/` and `test/<subject>_<split>.csv`, rows `question,A,B,C,D,answer_letter`, one
  pair of files per configured subject (HELM's core five by default, so the run entries and the
  summary's MMLU column are HELM's): the world has no algebra or chemistry, so each subject file
  holds multiple-choice questions about the world's facts, subject k asking every evaluation
  country about attribute i + k, so the subjects ask different facts of the same countries;
- boolq: `train` and `dev` JSONL rows `{question, title, answer, passage}` plus
  `boolq_perturbed.jsonl` (the contrast-set file, in allenai/contrast-sets' JSON schema:
  questions with their answer flipped by changing the value asked about);
- natural_qa: `nq-dev-0{0..4}.jsonl.gz` in NaturalQuestions' raw schema (`document_html`,
  `document_tokens`, `annotations` with byte offsets of the long and short answers); the long
  answer is a paragraph about the country, the short answer the value;
- quac: `train.json` / `val.json` in QuAC's schema (`data[].paragraphs[0].context` ending in
  " CANNOTANSWER", `qas` with `orig_answer` and `answers`); each dialogue follows a historian's
  account of one country, so HELM's fairness perturbations (first names, gender pronouns) have
  something to act on, as in QuAC's biographies;
- hellaswag: `hellaswag_{train,val}.jsonl` (`activity_label`, `ctx_a`, `ctx_b`, `endings`,
  `label`): a fact sentence as context, and four endings of a second sentence.

Evaluation instances (`n_instances` per scenario) alternate between countries seen in SFT and
countries never in SFT (both are in the pretraining corpus), so each scenario mixes the two
halves evenly, as the judge prompts do; `card.json` records the counts. In-context (training)
examples come from a disjoint set of countries.

Offline stand-ins, written here because HELM downloads them at run time and this project runs
without network (each is documented in `card.json`):
- `perturbations/dialect/SAE_to_AAVE_mapping.json`: a short SAE -> AAVE spelling map written for
  this project (a handful of widely documented forms), not Ziems et al.'s (2022) dictionary;
- `perturbations/person_name/data/person_names.txt`: first names by gender and race in HELM's file
  format, a subset of the name lists of Caliskan et al. (2017), not HELM's full file;
- `nltk_data/tokenizers/punkt_tab/english/`: empty Punkt parameter files (no abbreviations or
  collocations), enough for the word tokenizer of HELM's bias metrics.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stylized_dpo.io import atomic_path, write_json
from stylized_dpo.records import MMLU_CORE_SUBJECTS, PUNKT_FILES
from stylized_dpo.world.facts import World
from stylized_dpo.world.helm_scenarios import (
    PERSON_NAMES,
    boolq_contrast,
    boolq_rows,
    hellaswag_rows,
    mmlu_rows,
    nq_files,
    quac_dialogue,
    split_entities,
)

# Stand-in SAE -> AAVE spellings (see the module docstring).
SAE_TO_AAVE: dict[str, list[str]] = {
    "the": ["da"],
    "this": ["dis"],
    "that": ["dat"],
    "they": ["dey"],
    "them": ["dem"],
    "their": ["dey"],
    "these": ["dese"],
    "those": ["dose"],
    "with": ["wit"],
    "about": ["bout"],
    "because": ["cuz"],
    "going": ["goin"],
    "nothing": ["nothin"],
    "something": ["somethin"],
    "your": ["yo"],
}
STAND_INS = {
    "perturbations/dialect/SAE_to_AAVE_mapping.json": (
        "short SAE->AAVE spelling map written for this project, not Ziems et al. (2022)"
    ),
    "perturbations/person_name/data/person_names.txt": (
        "subset of Caliskan et al. (2017) first names in HELM's file format"
    ),
    "nltk_data/tokenizers/punkt_tab/english": (
        "empty Punkt parameters (no abbreviations), for HELM's bias metrics"
    ),
}
"""Offline stand-ins for files HELM downloads at run time (recorded in card.json)."""


# ---- offline stand-ins ------------------------------------------------------------------------


def write_perturbation_files(out_dir: str | Path) -> None:
    """The dialect map and the person-name file HELM's fairness perturbations read."""
    out = Path(out_dir) / "perturbations"
    write_json(out / "dialect" / "SAE_to_AAVE_mapping.json", SAE_TO_AAVE)
    lines = [
        f"{name},first_name,gender,{gender},race,{race}"
        for (race, gender), names in PERSON_NAMES.items()
        for name in names
    ]
    path = out / "person_name" / "data" / "person_names.txt"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_punkt_stand_in(out_dir: str | Path) -> Path:
    """Empty Punkt parameters; returns the folder to put on NLTK_DATA."""
    root = Path(out_dir) / "nltk_data"
    folder = root / "tokenizers" / "punkt_tab" / "english"
    folder.mkdir(parents=True, exist_ok=True)
    for name in PUNKT_FILES:
        (folder / name).write_text("", encoding="utf-8")
    return root


# ---- entry point ------------------------------------------------------------------------------


def write_csv_rows(path: Path, rows: list[list[str]]) -> None:
    """Rows as CSV without a header (MMLU's files), written atomically."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")


def _write_jsonl_plain(path: Path, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({k: row[k] for k in keys}, ensure_ascii=False) + "\n")


def write_helm_scenarios(
    world: World,
    out_dir: str | Path,
    n_instances: int,
    seed: int,
    mmlu_subjects: Sequence[str] = MMLU_CORE_SUBJECTS,
) -> dict:
    """Write the five scenarios' local files (and the offline stand-ins) under `out_dir`.

    Returns the card (also written to `out_dir/card.json`): instance counts per scenario and
    split, the seen/unseen mix of evaluation instances, and the stand-ins used.
    """
    if n_instances < 2:
        raise ValueError(f"n_instances must be at least 2, got {n_instances}")
    out = Path(out_dir)
    scenarios = out / "scenarios"
    eval_entities, train_entities = split_entities(world, n_instances, seed)
    rng = random.Random(seed)

    data = scenarios / "mmlu" / "data"
    for k, subject in enumerate(mmlu_subjects):
        dev = mmlu_rows(world, train_entities[:5], rng, offset=k)
        write_csv_rows(data / "dev" / f"{subject}_dev.csv", dev)
        write_csv_rows(
            data / "test" / f"{subject}_test.csv", mmlu_rows(world, eval_entities, rng, k)
        )

    data = scenarios / "boolq" / "data"
    keys = ("question", "title", "answer", "passage")  # BoolQ's fields, in its order
    _write_jsonl_plain(data / "train", boolq_rows(world, train_entities, rng), keys)
    dev = boolq_rows(world, eval_entities, rng)
    _write_jsonl_plain(data / "dev", dev, keys)
    write_json(data / "boolq_perturbed.jsonl", boolq_contrast(world, dev, rng))

    data = scenarios / "natural_qa" / "data"
    for k, rows in enumerate(nq_files(train_entities, eval_entities, rng)):
        with atomic_path(data / f"nq-dev-{k:02d}.jsonl.gz") as tmp:
            with gzip.open(tmp, "wt", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")

    data = scenarios / "quac" / "data"
    write_json(
        data / "train.json",
        {"data": [quac_dialogue(e, rng, f"train_{i}") for i, e in enumerate(train_entities)]},
    )
    write_json(
        data / "val.json",
        {"data": [quac_dialogue(e, rng, f"val_{i}") for i, e in enumerate(eval_entities)]},
    )

    data = scenarios / "hellaswag" / "data"
    keys = (
        "ind",
        "activity_label",
        "ctx_a",
        "ctx_b",
        "ctx",
        "endings",
        "source_id",
        "split",
        "split_type",
        "label",
    )
    _write_jsonl_plain(
        data / "hellaswag_train.jsonl", hellaswag_rows(world, train_entities, rng, "train"), keys
    )
    _write_jsonl_plain(
        data / "hellaswag_val.jsonl", hellaswag_rows(world, eval_entities, rng, "val"), keys
    )

    write_perturbation_files(out)
    write_punkt_stand_in(out)

    n_seen = sum(e.in_sft for e in eval_entities)
    card = {
        "seed": seed,
        "eval_instances_per_scenario": n_instances,
        "train_instances_per_scenario": len(train_entities),
        "eval_countries_seen_in_sft": n_seen,
        "eval_countries_unseen": n_instances - n_seen,
        "eval_countries": [{"name": e.name, "in_sft": e.in_sft} for e in eval_entities],
        "mmlu_subjects": list(mmlu_subjects),
        "stand_ins": STAND_INS,
    }
    write_json(out / "card.json", card)
    return card
