"""HELM's own files for `helm.data: local`, written offline for tests and rehearsals.

GPU nodes often have no internet, so users pre-place what helm-run would download, in HELM's
download layout (`stylized_dpo.evals.helm.local_data_files` lists it). `write_helm_local_data`
writes such a folder with generated content in the real files' formats and field names:

- mmlu: `data/{dev,val,test}/<subject>_<split>.csv` without a header, rows
  `question,A,B,C,D,answer_letter`, for HELM's core subjects with questions of each subject's
  kind whose answers are computed (group orders, molar masses, key spaces, degrees of freedom,
  dated treaties and doctrines); other subjects get the world's questions;
- boolq: `data/train` and `data/dev` JSONL rows `{question, title, answer, passage}` (BoolQ's
  fields, lower-case questions without a question mark) and `data/boolq_perturbed.jsonl`
  (allenai/contrast-sets' JSON: a description entry, then questions with perturbed ones);
- natural_qa: `data/nq-dev-0{0..4}.jsonl.gz`, NaturalQuestions' raw schema (`document_html`,
  `document_tokens`, `long_answer_candidates`, `annotations` with byte and token offsets), so
  both the open-book (long answer) and closed-book modes read it;
- quac: `data/{train,val}.json` (`data[].paragraphs[0]`: context ending in ` CANNOTANSWER`, `qas`
  with `orig_answer`, `answers`, `followup`, `yesno`);
- hellaswag: `data/hellaswag_{train,val}.jsonl` (`ind`, `activity_label`, `ctx_a`, `ctx_b`,
  `ctx`, `endings`, `source_id`, `split`, `split_type`, `label`);
- the perturbation resources of `data_augmentation=canonical` and nltk's punkt parameters.

BoolQ, NaturalQuestions, QuAC and HellaSwag content comes from a generated world of fictional
countries (`stylized_dpo.world.helm_data`, the miniature's writer, same formats).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from stylized_dpo.io import write_json
from stylized_dpo.records import MMLU_CORE_SUBJECTS
from stylized_dpo.world.facts import make_world
from stylized_dpo.world.helm_data import write_csv_rows, write_helm_scenarios
from stylized_dpo.world.helm_scenarios import N_TRAIN

MMLU_SPLITS = {"dev": 5, "val": 5}
"""Rows of MMLU's in-context (dev) and validation splits, as in MMLU (5 dev per subject)."""

Question = tuple[str, str, list[str]]
"""(question, correct answer, three wrong answers)."""


def _abstract_algebra(rng: random.Random) -> Question:
    n = rng.randint(6, 40)
    if rng.random() < 0.5:
        a = rng.randint(1, n - 1)
        right = n // math.gcd(a, n)
        divisors = {d for d in range(1, n + 1) if n % d == 0}
        wrong = (divisors | {a, n + 1, 2 * n}) - {right}
        q = f"Find the order of the element {a} in the additive group Z_{n}."
    else:
        right = sum(math.gcd(k, n) == 1 for k in range(1, n + 1))
        wrong = {n - 1, n // 2, right + 2, right - 1, n} - {right}
        q = f"How many generators does the cyclic group Z_{n} have?"
    return q, str(right), [str(w) for w in rng.sample(sorted(wrong), 3)]


_MOLAR_MASS = {
    "H2O": 18.02,
    "CO2": 44.01,
    "NaCl": 58.44,
    "CH4": 16.04,
    "NH3": 17.03,
    "C6H12O6": 180.16,
    "H2SO4": 98.08,
    "CaCO3": 100.09,
    "KMnO4": 158.03,
    "C2H5OH": 46.07,
}


def _college_chemistry(rng: random.Random) -> Question:
    formula, mass = rng.choice(sorted(_MOLAR_MASS.items()))
    grams = rng.choice((0.5, 1, 2, 5, 10)) * mass
    moles = round(grams / mass, 2)
    q = f"How many moles are in {grams:.2f} g of {formula} (molar mass {mass} g/mol)?"
    wrong = {round(moles * f, 2) for f in (0.5, 2, 10, 0.1, 4)} - {moles}
    return q, f"{moles:g}", [f"{w:g}" for w in rng.sample(sorted(wrong), 3)]


_SECURITY = (
    (
        "Which attack inserts database commands through unsanitised user input?",
        "SQL injection",
        ["Cross-site scripting", "Clickjacking", "ARP spoofing"],
    ),
    (
        "Which property does a message authentication code provide?",
        "Integrity and authenticity",
        ["Confidentiality only", "Non-repudiation only", "Availability"],
    ),
    (
        "What does a salt added before hashing a password defeat?",
        "Precomputed rainbow tables",
        ["Keyloggers", "Phishing", "Side-channel timing attacks"],
    ),
    (
        "Which of these is a stream cipher?",
        "ChaCha20",
        ["AES in ECB mode", "RSA", "SHA-256"],
    ),
)


def _computer_security(rng: random.Random) -> Question:
    if rng.random() < 0.5:
        q, right, wrong = rng.choice(_SECURITY)
        return q, right, list(wrong)
    bits = rng.choice((40, 56, 64, 80, 112, 128))
    q = f"How many keys must a brute-force attack try, at most, against a {bits}-bit key?"
    return q, f"2^{bits}", [f"2^{bits // 2}", f"{bits}^2", f"2^{bits - 1} - 1"]


def _econometrics(rng: random.Random) -> Question:
    n, k = rng.randint(30, 500), rng.randint(1, 8)
    q = (
        f"An OLS regression of y on {k} regressors and an intercept uses {n} observations. "
        "How many residual degrees of freedom does it have?"
    )
    right = n - k - 1
    wrong = {n - k, n - 1, n - k - 2, n + k + 1} - {right}
    return q, str(right), [str(w) for w in rng.sample(sorted(wrong), 3)]


_FOREIGN_POLICY = (
    ("the Monroe Doctrine", "1823"),
    ("the Truman Doctrine", "1947"),
    ("the North Atlantic Treaty", "1949"),
    ("the Camp David Accords", "1978"),
    ("the Intermediate-Range Nuclear Forces Treaty", "1987"),
    ("the Treaty of Paris ending the Spanish-American War", "1898"),
)


def _us_foreign_policy(rng: random.Random) -> Question:
    name, year = rng.choice(_FOREIGN_POLICY)
    wrong = rng.sample([y for _, y in _FOREIGN_POLICY if y != year], 3)
    return f"In which year was {name} announced or signed?", year, wrong


SUBJECT_QUESTIONS: dict[str, Callable[[random.Random], Question]] = {
    "abstract_algebra": _abstract_algebra,
    "college_chemistry": _college_chemistry,
    "computer_security": _computer_security,
    "econometrics": _econometrics,
    "us_foreign_policy": _us_foreign_policy,
}


def mmlu_subject_rows(subject: str, n: int, rng: random.Random) -> list[list[str]]:
    """`n` rows of MMLU's CSV for one core subject: question, four choices, answer letter."""
    rows = []
    for _ in range(n):
        question, right, wrong = SUBJECT_QUESTIONS[subject](rng)
        choices = [right, *wrong]
        rng.shuffle(choices)
        rows.append([question, *choices, "ABCD"[choices.index(right)]])
    return rows


def write_helm_local_data(
    root: Path,
    n_instances: int,
    seed: int,
    mmlu_subjects: Sequence[str] = MMLU_CORE_SUBJECTS,
) -> dict:
    """Write HELM's files for the core scenarios under `root` (HELM's download layout).

    `n_instances` evaluation instances per scenario (MMLU: per subject); returns the card
    (also `root/card.json`).
    """
    root = Path(root)
    # Enough countries for the evaluation instances and N_TRAIN training ones, in each half.
    world = make_world(2 * (n_instances // 2 + 1 + N_TRAIN), seed=seed)
    card = write_helm_scenarios(world, root, n_instances, seed, mmlu_subjects)
    rng = random.Random(seed)
    data = root / "scenarios" / "mmlu" / "data"
    for subject in mmlu_subjects:
        if subject not in SUBJECT_QUESTIONS:
            continue  # the world's questions, filed under this subject
        for split, n in {**MMLU_SPLITS, "test": n_instances}.items():
            write_csv_rows(
                data / split / f"{subject}_{split}.csv", mmlu_subject_rows(subject, n, rng)
            )
    card["mmlu_generated_subjects"] = [s for s in mmlu_subjects if s in SUBJECT_QUESTIONS]
    write_json(root / "card.json", card)
    return card
