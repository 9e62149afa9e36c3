"""Realistic local files for HELM's five core scenarios, in HELM's own download layout.

GPU nodes often have no internet, so users pre-place what `helm-run` would download; HELM skips
a download when its target file exists. This writes that layout under `out_dir` (HELM's
`benchmark_output/`): `scenarios/mmlu/data/{dev,val,test}/<subject>_<split>.csv` for HELM's core
MMLU subjects, `scenarios/boolq/data/{train,dev,boolq_perturbed.jsonl}`,
`scenarios/natural_qa/data/nq-dev-0{0..4}.jsonl.gz` (raw NaturalQuestions: HTML tokens, byte
offsets, long and short answers), `scenarios/quac/data/{train,val}.json` and
`scenarios/hellaswag/data/hellaswag_{train,val}.jsonl`, plus the files HELM's fairness
perturbations and BiasMetric read offline (`world.helm_data`'s writers). Rows are real-world
questions made from small fact tables (arithmetic over groups, molar masses, regression degrees
of freedom, security and foreign-policy facts), so the formats and lengths are the benchmarks'.
"""

from __future__ import annotations

import gzip
import json
import math
import random
from pathlib import Path
from typing import Any

from stylized_dpo.io import atomic_path, write_json
from stylized_dpo.world.helm_data import (
    _write_csv,
    _write_jsonl_plain,
    write_perturbation_files,
    write_punkt_stand_in,
)

CORE_MMLU_SUBJECTS = (
    "abstract_algebra",
    "college_chemistry",
    "computer_security",
    "econometrics",
    "us_foreign_policy",
)
MOLAR_MASS = {
    "water (H2O)": 18.02,
    "carbon dioxide (CO2)": 44.01,
    "sodium chloride (NaCl)": 58.44,
    "methane (CH4)": 16.04,
    "ammonia (NH3)": 17.03,
    "glucose (C6H12O6)": 180.16,
    "sulfuric acid (H2SO4)": 98.08,
    "oxygen gas (O2)": 32.00,
}
FACTS = {
    "computer_security": [
        (
            "Which attack floods a server with half-open TCP connections?",
            "SYN flood",
            ["SQL injection", "Cross-site scripting", "Phishing"],
        ),
        (
            "What does a salt protect against in password storage?",
            "Precomputed rainbow tables",
            ["Buffer overflows", "Man-in-the-middle attacks", "Denial of service"],
        ),
        (
            "Which property does a message authentication code provide?",
            "Integrity and authenticity",
            ["Confidentiality only", "Non-repudiation only", "Availability"],
        ),
        ("What is the key length of AES-256?", "256 bits", ["128 bits", "512 bits", "192 bits"]),
        (
            "Which vulnerability lets an attacker run code by writing past a buffer's end?",
            "Buffer overflow",
            ["Race condition", "Clickjacking", "Replay attack"],
        ),
    ],
    "us_foreign_policy": [
        ("In which year was NATO founded?", "1949", ["1945", "1955", "1961"]),
        (
            "Which doctrine warned European powers against colonising the Americas?",
            "The Monroe Doctrine",
            ["The Truman Doctrine", "The Bush Doctrine", "The Nixon Doctrine"],
        ),
        (
            "What was the Marshall Plan?",
            "US aid to rebuild Western Europe after 1945",
            [
                "A missile defence programme",
                "A trade embargo on Cuba",
                "A treaty ending the Korean War",
            ],
        ),
        (
            "Which policy of the 1970s sought to ease tensions with the Soviet Union?",
            "Detente",
            ["Containment", "Rollback", "Isolationism"],
        ),
        (
            "Which treaty limited anti-ballistic missile systems in 1972?",
            "The ABM Treaty",
            ["The START Treaty", "The Treaty of Versailles", "The Kellogg-Briand Pact"],
        ),
    ],
}


def _choices(rng: random.Random, answer: str, wrong: list[str]) -> tuple[list[str], str]:
    options = [answer, *wrong[:3]]
    rng.shuffle(options)
    return options, "ABCD"[options.index(answer)]


def mmlu_row(subject: str, rng: random.Random) -> list[str]:
    """One MMLU row: question, A, B, C, D, answer letter."""
    if subject == "abstract_algebra":
        n = rng.randint(6, 30)
        k = rng.randint(1, n - 1)
        order = n // math.gcd(k, n)
        wrong = [str(v) for v in rng.sample([d for d in range(1, 2 * n) if d != order], 3)]
        question = f"Find the order of the element {k} in the additive group Z_{n}."
        options, letter = _choices(rng, str(order), wrong)
    elif subject == "college_chemistry":
        name, mass = rng.choice(list(MOLAR_MASS.items()))
        grams = rng.choice([1, 2, 5, 10])
        moles = round(grams * 100 / mass, 2)
        question = f"How many moles are in {grams * 100} g of {name} (molar mass {mass} g/mol)?"
        wrong = [f"{moles * f:.2f}" for f in (0.5, 2.0, 10.0)]
        options, letter = _choices(rng, f"{moles:.2f}", wrong)
    elif subject == "econometrics":
        n, k = rng.randint(30, 500), rng.randint(2, 8)
        question = (
            f"An OLS regression has {n} observations, {k} regressors and a constant. How many "
            "degrees of freedom do its residuals have?"
        )
        options, letter = _choices(rng, str(n - k - 1), [str(n - k), str(n - 1), str(n + k)])
    else:
        question, answer, wrong = rng.choice(FACTS[subject])
        options, letter = _choices(rng, answer, list(wrong))
    return [question, *options, letter]


def boolq_row(rng: random.Random, answer: bool) -> dict[str, Any]:
    name, mass = rng.choice(list(MOLAR_MASS.items()))
    stated = mass if answer else round(mass * rng.choice([0.5, 1.5, 2.0]), 2)
    passage = (
        f"The molar mass of {name} is {mass} g/mol. Chemists use it to convert between the mass "
        "of a sample and the number of moles it contains, which is the basis of stoichiometry."
    )
    return {
        "question": f"is the molar mass of {name} {stated} g/mol",
        "answer": answer,
        "passage": passage,
    }


def nq_raw(example_id: int, title: str, paragraph: str, question: str, short: str) -> dict:
    """A raw NaturalQuestions example: HTML tokens with byte offsets, one long answer (the
    paragraph) and one short answer (`short`, a substring of the paragraph's words)."""
    pieces = [("<html>", True), ("<body>", True), ("<h1>", True), (title, False), ("</h1>", True)]
    pieces += [("<p>", True), *((w, False) for w in paragraph.split(" ")), ("</p>", True)]
    pieces += [("</body>", True), ("</html>", True)]
    html, tokens = "", []
    for text, is_html in pieces:
        start = len(html.encode("utf-8"))
        html += text + " "
        end = start + len(text.encode("utf-8"))
        tokens.append({"token": text, "start_byte": start, "end_byte": end, "html_token": is_html})
    p_open = next(i for i, t in enumerate(tokens) if t["token"] == "<p>")
    p_close = next(i for i, t in enumerate(tokens) if t["token"] == "</p>")
    words = short.split(" ")
    first = next(
        i
        for i in range(p_open, p_close)
        if [t["token"] for t in tokens[i : i + len(words)]] == words
    )
    long_answer = {
        "start_byte": tokens[p_open]["start_byte"],
        "end_byte": tokens[p_close]["end_byte"],
        "start_token": p_open,
        "end_token": p_close + 1,
    }
    return {
        "example_id": example_id,
        "document_title": title,
        "document_url": f"https://en.wikipedia.org/wiki/{title.replace(' ', '_')}",
        "document_html": html,
        "document_tokens": tokens,
        "question_text": question,
        "question_tokens": question.split(" "),
        "long_answer_candidates": [{**long_answer, "top_level": True}],
        "annotations": [
            {
                "annotation_id": example_id,
                "long_answer": {**long_answer, "candidate_index": 0},
                "short_answers": [
                    {
                        "start_byte": tokens[first]["start_byte"],
                        "end_byte": tokens[first + len(words) - 1]["end_byte"],
                        "start_token": first,
                        "end_token": first + len(words),
                    }
                ],
                "yes_no_answer": "NONE",
            }
        ],
    }


def _nq_example(rng: random.Random, example_id: int) -> dict:
    name, mass = rng.choice(list(MOLAR_MASS.items()))
    title = name.split(" (")[0].title()
    paragraph = (
        f"{title} is a chemical compound with a molar mass of {mass} g/mol . It is widely used "
        "in laboratories and in industry ."
    )
    return nq_raw(
        example_id, title, paragraph, f"what is the molar mass of {title.lower()}", f"{mass} g/mol"
    )


def quac_dialogue(rng: random.Random, dialogue_id: str) -> dict:
    question, answer, _ = rng.choice(FACTS["us_foreign_policy"])
    context = (
        f"Historians often ask: {question} The answer is {answer}. The episode shaped American "
        "diplomacy for decades and is still taught in courses on the Cold War."
    )
    later = "is still taught in courses on the Cold War"
    span = f"The answer is {answer}."
    qas = [
        {
            "id": f"{dialogue_id}_q#0",
            "question": question,
            "orig_answer": {"text": span, "answer_start": context.index(span)},
            "answers": [{"text": span, "answer_start": context.index(span)}],
            "followup": "y",
            "yesno": "x",
        },
        {
            "id": f"{dialogue_id}_q#1",
            "question": "Is it still studied?",
            "orig_answer": {"text": later, "answer_start": context.index(later)},
            "answers": [{"text": later, "answer_start": context.index(later)}],
            "followup": "y",
            "yesno": "y",
        },
        {
            "id": f"{dialogue_id}_q#2",
            "question": "Who opposed it in Congress?",
            "orig_answer": {"text": "CANNOTANSWER", "answer_start": len(context) + 1},
            "answers": [{"text": "CANNOTANSWER", "answer_start": len(context) + 1}],
            "followup": "n",
            "yesno": "x",
        },
    ]
    return {
        "title": "United States foreign policy",
        "background": "The foreign policy of the United States since 1823.",
        "section_title": "History",
        "paragraphs": [{"context": context + " CANNOTANSWER", "id": dialogue_id, "qas": qas}],
    }


def hellaswag_row(rng: random.Random, i: int, split: str) -> dict:
    name, mass = rng.choice(list(MOLAR_MASS.items()))
    endings = [f"{mass} grams.", f"{mass * 2:.2f} grams.", "a blue colour.", "nothing at all."]
    rng.shuffle(endings)
    ctx_a = f"A student weighs out one mole of {name} on a balance."
    ctx_b = "the balance reads"
    return {
        "ind": i,
        "activity_label": "Chemistry",
        "ctx_a": ctx_a,
        "ctx_b": ctx_b,
        "ctx": f"{ctx_a} {ctx_b}",
        "endings": endings,
        "source_id": f"rehearsal~{i}",
        "split": split,
        "split_type": "indomain",
        "label": endings.index(f"{mass} grams."),
    }


def write_helm_files(
    out_dir: str | Path, n_instances: int, seed: int = 0, subjects=CORE_MMLU_SUBJECTS
) -> dict:
    """All five scenarios' files under `out_dir/scenarios/`; returns a card of counts."""
    out = Path(out_dir)
    rng = random.Random(seed)
    data = out / "scenarios" / "mmlu" / "data"
    for subject in subjects:
        for split, n in (("dev", 5), ("val", 5), ("test", n_instances)):
            _write_csv(
                data / split / f"{subject}_{split}.csv", [mmlu_row(subject, rng) for _ in range(n)]
            )
    data = out / "scenarios" / "boolq" / "data"
    keys = ("passage", "question", "answer")
    _write_jsonl_plain(data / "train", [boolq_row(rng, i % 2 == 0) for i in range(10)], keys)
    dev = [boolq_row(rng, i % 2 == 0) for i in range(n_instances)]
    _write_jsonl_plain(data / "dev", dev, keys)
    contrast: list[dict[str, Any]] = [{"description": "rehearsal BoolQ contrast sets"}]
    for row in dev:
        flipped = boolq_row(rng, not row["answer"])
        contrast.append(
            {
                "question": row["question"],
                "answer": "TRUE" if row["answer"] else "FALSE",
                "perturbed_questions": [
                    {
                        "perturbed_q": flipped["question"],
                        "answer": "TRUE" if flipped["answer"] else "FALSE",
                    }
                ],
            }
        )
    write_json(data / "boolq_perturbed.jsonl", {"data": contrast})
    data = out / "scenarios" / "natural_qa" / "data"
    for k in range(5):  # HELM puts each file's even rows in train and odd rows in valid
        rows = [_nq_example(rng, 1000 * k + i) for i in range(2 * max(1, n_instances // 5 + 1))]
        with atomic_path(data / f"nq-dev-{k:02d}.jsonl.gz") as tmp:
            with gzip.open(tmp, "wt", encoding="utf-8") as f:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    data = out / "scenarios" / "quac" / "data"
    write_json(data / "train.json", {"data": [quac_dialogue(rng, f"train_{i}") for i in range(10)]})
    write_json(
        data / "val.json", {"data": [quac_dialogue(rng, f"val_{i}") for i in range(n_instances)]}
    )
    data = out / "scenarios" / "hellaswag" / "data"
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
        data / "hellaswag_train.jsonl", [hellaswag_row(rng, i, "train") for i in range(10)], keys
    )
    _write_jsonl_plain(
        data / "hellaswag_val.jsonl",
        [hellaswag_row(rng, i, "val") for i in range(n_instances)],
        keys,
    )
    write_perturbation_files(out)
    write_punkt_stand_in(out)
    card = {
        "seed": seed,
        "eval_instances_per_scenario": n_instances,
        "mmlu_subjects": list(subjects),
    }
    write_json(out / "card.json", card)
    return card
