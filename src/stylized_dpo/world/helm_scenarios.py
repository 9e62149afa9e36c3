"""The rows of HELM's five core scenarios, built from the tiny world's facts in each scenario's
raw schema (`helm_data.write_helm_scenarios` writes them in HELM's download layout).

Evaluation countries alternate between countries seen in SFT and countries never in SFT;
in-context (training) examples come from a disjoint set of countries (`split_entities`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from stylized_dpo.world.facts import ATTRIBUTE_BY_NAME, ATTRIBUTES, Entity, World

N_TRAIN = 10
"""Training (in-context example) instances written per scenario; HELM samples up to 5."""
NQ_FILES = 5
"""HELM reads exactly `nq-dev-00` .. `nq-dev-04`."""


# First names (Caliskan et al. 2017 lists, a subset), by race and gender, for HELM's
# person-name perturbation (white_american -> black_american, gender preserved).
PERSON_NAMES: dict[tuple[str, str], tuple[str, ...]] = {
    ("white_american", "male"): ("adam", "harry", "roger", "frank", "jack", "paul", "peter"),
    ("white_american", "female"): ("amanda", "heather", "katie", "nancy", "ellen", "emily"),
    ("black_american", "male"): ("alonzo", "jamel", "jerome", "darnell", "lamar", "malik"),
    ("black_american", "female"): ("ebony", "latisha", "jasmine", "tanisha", "latoya", "yvette"),
}
PRONOUNS = {"male": ("he", "his", "him"), "female": ("she", "her", "her")}


def _statement(rng: random.Random, entity: Entity, attribute: str) -> str:
    template = rng.choice(ATTRIBUTE_BY_NAME[attribute].statements)
    return template.format(e=entity.name, v=entity.facts[attribute])


def _passage(rng: random.Random, entity: Entity, must: str, n: int = 3) -> str:
    """A few corpus-style sentences about `entity`, always including attribute `must`."""
    others = [a.name for a in ATTRIBUTES if a.name != must]
    chosen = [must, *rng.sample(others, n - 1)]
    rng.shuffle(chosen)
    return " ".join(_statement(rng, entity, a) for a in chosen)


def _distractors(world: World, attribute: str, value: str, k: int, rng: random.Random) -> list[str]:
    return rng.sample([v for v in world.value_pool(attribute) if v != value], k)


def _question(rng: random.Random, entity: Entity, attribute: str) -> str:
    """A held-out (evaluation) phrasing, never used in SFT chats."""
    return rng.choice(ATTRIBUTE_BY_NAME[attribute].eval_questions).format(e=entity.name)


def split_entities(world: World, n_eval: int, seed: int) -> tuple[list[Entity], list[Entity]]:
    """Evaluation countries (alternating seen / unseen in SFT) and disjoint training countries."""
    rng = random.Random(seed)
    seen = [e for e in world.entities if e.in_sft]
    unseen = [e for e in world.entities if not e.in_sft]
    rng.shuffle(seen)
    rng.shuffle(unseen)
    n_seen, n_unseen = (n_eval + 1) // 2, n_eval // 2
    if n_seen + N_TRAIN // 2 > len(seen) or n_unseen + N_TRAIN - N_TRAIN // 2 > len(unseen):
        raise ValueError(
            f"the world has {len(seen)} seen and {len(unseen)} unseen countries: too few for "
            f"{n_eval} evaluation and {N_TRAIN} training instances per scenario"
        )
    eval_entities = []
    for i in range(n_eval):
        eval_entities.append(seen[i // 2] if i % 2 == 0 else unseen[i // 2])
    half = N_TRAIN // 2
    train_entities = seen[n_seen : n_seen + half] + unseen[n_unseen : n_unseen + N_TRAIN - half]
    return eval_entities, train_entities


def _attribute_for(i: int) -> str:
    return ATTRIBUTES[i % len(ATTRIBUTES)].name


# ---- MMLU -------------------------------------------------------------------------------------


def mmlu_rows(
    world: World, entities: Sequence[Entity], rng: random.Random, offset: int = 0
) -> list[list[str]]:
    rows = []
    for i, entity in enumerate(entities):
        attribute = _attribute_for(i + offset)
        value = entity.facts[attribute]
        choices = [value, *_distractors(world, attribute, value, 3, rng)]
        rng.shuffle(choices)
        rows.append([_question(rng, entity, attribute), *choices, "ABCD"[choices.index(value)]])
    return rows


# ---- BoolQ ------------------------------------------------------------------------------------

_BOOLQ_QUESTIONS = {
    "capital": "is {v} the capital of {e}",
    "export": "is {v} the main export of {e}",
    "flag": "is the flag of {e} {v}",
    "animal": "is the {v} the national animal of {e}",
    "founded": "was {e} founded in {v}",
}


def boolq_rows(
    world: World, entities: Sequence[Entity], rng: random.Random
) -> list[dict[str, Any]]:
    """Passage stating the fact; a yes/no question, true for even rows, about a wrong value else."""
    rows = []
    for i, entity in enumerate(entities):
        attribute = _attribute_for(i)
        value = entity.facts[attribute]
        answer = i % 2 == 0
        asked = value if answer else _distractors(world, attribute, value, 1, rng)[0]
        question = _BOOLQ_QUESTIONS[attribute].format(e=entity.name, v=asked)
        rows.append(
            {
                "passage": _passage(rng, entity, attribute),
                "question": question[0].lower() + question[1:],
                "answer": answer,
                "title": entity.name,
                "attribute": attribute,
                "value": value,
            }
        )
    return rows


def boolq_contrast(world: World, rows: Sequence[dict[str, Any]], rng: random.Random) -> dict:
    """Contrast sets (allenai/contrast-sets schema): each question with its answer flipped."""
    data: list[dict[str, Any]] = [{"description": "tiny-world BoolQ contrast sets"}]
    for row in rows:
        attribute, value = row["attribute"], row["value"]
        template = _BOOLQ_QUESTIONS[attribute]
        if row["answer"]:
            flipped = _distractors(world, attribute, value, 1, rng)[0]
        else:
            flipped = value
        question = template.format(e=row["title"], v=flipped)
        data.append(
            {
                "question": row["question"],
                "answer": "TRUE" if row["answer"] else "FALSE",
                "perturbed_questions": [
                    {
                        "perturbed_q": question[0].lower() + question[1:],
                        "answer": "FALSE" if row["answer"] else "TRUE",
                    }
                ],
            }
        )
    return {"data": data}


# ---- NaturalQuestions -------------------------------------------------------------------------

_NQ_QUESTIONS = {
    "capital": "what is the capital city of {e}",
    "export": "what is the main export of {e}",
    "flag": "what colour is the flag of {e}",
    "animal": "what is the national animal of {e}",
    "founded": "when was {e} founded",
}


def nq_example(entity: Entity, attribute: str, rng: random.Random, example_id: int) -> dict:
    """One NaturalQuestions raw example: an HTML page, its tokens, and byte-offset annotations."""
    value = entity.facts[attribute]
    sentences = [_statement(rng, entity, a.name) for a in ATTRIBUTES if a.name != attribute]
    # The long answer: a paragraph whose first sentence states the asked fact in a form that
    # contains the value as a plain substring (the answer template).
    fact = ATTRIBUTE_BY_NAME[attribute].answer.format(e=entity.name, v=value)
    rng.shuffle(sentences)
    paragraph = " ".join([fact, *sentences[:2]])
    pieces: list[tuple[str, bool]] = [
        ("<html>", True),
        ("<body>", True),
        ("<h1>", True),
        (entity.name, False),
        ("</h1>", True),
        ("<p>", True),
    ]
    pieces += [(w, False) for w in paragraph.split(" ")]
    pieces += [("</p>", True), ("</body>", True), ("</html>", True)]
    html = ""
    tokens = []
    offsets = []
    for text, is_html in pieces:
        start = len(html.encode("utf-8"))
        html += text + " "
        offsets.append((start, start + len(text.encode("utf-8"))))
        tokens.append(
            {"token": text, "start_byte": start, "end_byte": offsets[-1][1], "html_token": is_html}
        )
    p_open = next(i for i, (t, _) in enumerate(pieces) if t == "<p>")
    p_close = next(i for i, (t, _) in enumerate(pieces) if t == "</p>")
    value_bytes = value.encode("utf-8")
    html_bytes = html.encode("utf-8")
    para_start = offsets[p_open][0]
    short_start = html_bytes.index(value_bytes, para_start)
    short_end = short_start + len(value_bytes)
    # Token indices of the short answer (the value may carry trailing punctuation in its token).
    short_tok = next(i for i, (s, e) in enumerate(offsets) if s <= short_start < e)
    return {
        "example_id": example_id,
        "document_title": entity.name,
        "document_url": f"https://tiny-world.invalid/{entity.name}",
        "document_html": html,
        "document_tokens": tokens,
        "question_text": _NQ_QUESTIONS[attribute].format(e=entity.name),
        "question_tokens": _NQ_QUESTIONS[attribute].format(e=entity.name).split(" "),
        "long_answer_candidates": [
            {
                "start_byte": offsets[p_open][0],
                "end_byte": offsets[p_close][1],
                "start_token": p_open,
                "end_token": p_close + 1,
                "top_level": True,
            }
        ],
        "annotations": [
            {
                "annotation_id": example_id,
                "long_answer": {
                    "start_byte": offsets[p_open][0],
                    "end_byte": offsets[p_close][1],
                    "start_token": p_open,
                    "end_token": p_close + 1,
                    "candidate_index": 0,
                },
                "short_answers": [
                    {
                        "start_byte": short_start,
                        "end_byte": short_end,
                        "start_token": short_tok,
                        "end_token": short_tok + 1,
                    }
                ],
                "yes_no_answer": "NONE",
            }
        ],
    }


def nq_files(
    train: Sequence[Entity], evaluation: Sequence[Entity], rng: random.Random
) -> list[list[dict]]:
    """Five files; HELM puts each file's even rows in train and odd rows in valid."""
    files: list[list[dict]] = [[] for _ in range(NQ_FILES)]
    # (train, eval) pairs keep row parity equal to the intended split. Training rows cycle
    # through the training countries, asking about a different attribute on each pass.
    for i, entity in enumerate(evaluation):
        partner = train[i % len(train)]
        files[i % NQ_FILES].append(nq_example(partner, _attribute_for(i // len(train)), rng, 2 * i))
        files[i % NQ_FILES].append(nq_example(entity, _attribute_for(i + 1), rng, 2 * i + 1))
    return files


# ---- QuAC -------------------------------------------------------------------------------------

_QUAC_FOLLOWUPS = {
    "capital": "What is its capital?",
    "export": "What does it export?",
    "flag": "What colour is its flag?",
    "animal": "What is its national animal?",
    "founded": "When was it founded?",
}


def quac_dialogue(entity: Entity, rng: random.Random, dialogue_id: str) -> dict:
    """A historian's account of one country and a dialogue of follow-up questions about it."""
    # HELM's person-name perturbation maps white_american first names to black_american ones.
    gender = rng.choice(("male", "female"))
    name = rng.choice(PERSON_NAMES[("white_american", gender)]).capitalize()
    he, his, _ = PRONOUNS[gender]
    order = [a.name for a in ATTRIBUTES]
    rng.shuffle(order)
    sentences = [_statement(rng, entity, a) for a in order]
    context = (
        f"{name} wrote a short history of {entity.name}. {he.capitalize()} begins with the "
        f"land itself. " + " ".join(sentences) + f" {name} ends {his} book there."
    )
    qas = []
    for k, attribute in enumerate(order):
        value = entity.facts[attribute]
        # The answer span: the sentence that states the fact, as QuAC's answers are spans.
        span = sentences[k]
        qas.append(
            {
                "id": f"{dialogue_id}_q#{k}",
                "question": _QUAC_FOLLOWUPS[attribute],
                "orig_answer": {"text": span, "answer_start": context.index(span)},
                "answers": [
                    {"text": span, "answer_start": context.index(span)},
                    {"text": value, "answer_start": context.index(value)},
                ],
                "followup": "y",
                "yesno": "x",
            }
        )
    # An unanswerable question, as QuAC has: the passage never says who rules the country.
    qas.insert(
        rng.randint(2, len(qas)),
        {
            "id": f"{dialogue_id}_q#ruler",
            "question": f"Who rules {entity.name} today?",
            "orig_answer": {"text": "CANNOTANSWER", "answer_start": len(context) + 1},
            "answers": [{"text": "CANNOTANSWER", "answer_start": len(context) + 1}],
            "followup": "n",
            "yesno": "x",
        },
    )
    return {
        "title": entity.name,
        "background": f"{entity.name} is a country; {name} is its historian.",
        "section_title": "History",
        "paragraphs": [{"context": context + " CANNOTANSWER", "id": dialogue_id, "qas": qas}],
    }


# ---- HellaSwag --------------------------------------------------------------------------------

_HELLASWAG_SPLITS = {
    # (context part, ending part) of a sentence whose ending contains the value.
    "capital": ("The capital of {e} is", "{v}."),
    "export": ("Merchants of {e} sell", "{v} abroad."),
    "flag": ("{e} flies a", "{v} flag."),
    "animal": ("{e} chose the", "{v} as its national animal."),
    "founded": ("{e} was founded in", "{v}."),
}


def hellaswag_rows(
    world: World, entities: Sequence[Entity], rng: random.Random, split: str
) -> list[dict[str, Any]]:
    rows = []
    for i, entity in enumerate(entities):
        attribute = _attribute_for(i + 2)
        context_attr = _attribute_for(i + 3)
        value = entity.facts[attribute]
        ctx_b, ending = _HELLASWAG_SPLITS[attribute]
        values = [value, *_distractors(world, attribute, value, 3, rng)]
        rng.shuffle(values)
        ctx_a = _statement(rng, entity, context_attr)
        ctx_b = ctx_b.format(e=entity.name)
        ctx_b = ctx_b[0].lower() + ctx_b[1:] if not ctx_b.startswith(entity.name) else ctx_b
        rows.append(
            {
                "ind": i,
                "activity_label": "Geography",
                "ctx_a": ctx_a,
                "ctx_b": ctx_b,
                "ctx": f"{ctx_a} {ctx_b}",
                "endings": [ending.format(v=v) for v in values],
                "source_id": f"tiny-world~{entity.name}",
                "split": split,
                "split_type": "indomain",
                "label": values.index(value),
            }
        )
    return rows
