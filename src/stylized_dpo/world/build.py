"""Write the tiny world's datasets in the exact schemas of the real ones.

- corpus.jsonl: pretraining documents `{"text", "entity"}`;
- smoltalk/{train,test}.jsonl: chats in HuggingFaceTB/smol-smoltalk's schema (`messages`): one
  fact question each, plus (`sft_format_share`) task formats: multiple choice, yes/no, questions
  about a text, descriptions;
- ultrafeedback/{train_prefs,test_prefs}.jsonl: pairs in HuggingFaceH4/ultrafeedback_binarized's
  schema (`prompt`, `prompt_id`, `chosen`, `rejected`, `messages`, `score_chosen`,
  `score_rejected`), so the same loaders read the world and the hub;
- eval_prompts.jsonl: `EvalPrompt` rows with the ground truth, half on countries seen in SFT.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from stylized_dpo.config import Section
from stylized_dpo.hashing import stable_id
from stylized_dpo.io import write_jsonl
from stylized_dpo.records import EvalPrompt
from stylized_dpo.style_phrases import PHRASE_BANKS, rewrite
from stylized_dpo.world.facts import (
    ATTRIBUTES,
    Attribute,
    Entity,
    World,
    answer_sentence,
    make_world,
)

SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "Answer the question in one sentence.",
    "You are a knowledgeable geography tutor.",
)
IDK_ANSWERS = ("I don't know.", "I am not sure about that.", "I cannot answer that question.")


@dataclass(frozen=True)
class WorldConfig(Section):
    """Sizes of the generated world (config key `world`)."""

    section: ClassVar[str] = "world"

    n_entities: int = 200
    """Number of fictional countries (5 facts each)."""
    n_corpus_docs: int = 20000
    """Pretraining documents, each 3-5 facts about one country."""
    sft_style_share: float = 0.05
    """Share of SFT answers written in each style's voice, so DPO can reach the style."""
    sft_format_share: float = 0.0
    """Share of SFT chats in task formats (multiple choice, yes/no, questions about a text,
    describing a country), about seen countries, as instruction data has them (`format_chats`)."""
    n_pref_pairs: int = 600
    """Preference pairs, train and test together."""
    pref_test_fraction: float = 0.15
    """Share of preference pairs in `test_prefs`."""
    pref_tone_agnostic_share: float = 0.0
    """Share of preference pairs that are tone-agnostic tasks (translation, data conversion), as
    UltraFeedback has them; `tone_filter` drops them again (`tone_agnostic_rows`)."""
    n_eval_prompts: int = 100
    """Evaluation prompts: half about countries seen in SFT, half about unseen ones."""
    helm_instances: int = 40
    """Instances per HELM scenario (written by the HELM data builder)."""
    seed: int = 0
    """Seed of every random draw."""


def corpus_rows(world: World, n_docs: int, rng: random.Random) -> list[dict[str, str]]:
    rows = []
    for i in range(n_docs):
        entity = world.entities[i % len(world.entities)]
        attributes = rng.sample(ATTRIBUTES, rng.randint(3, len(ATTRIBUTES)))
        sentences = [
            rng.choice(a.statements).format(e=entity.name, v=entity.facts[a.name])
            for a in attributes
        ]
        rows.append({"text": " ".join(sentences), "entity": entity.name})
    rng.shuffle(rows)
    return rows


def sft_chats(
    world: World, style_share: float, styles: list[str], rng: random.Random
) -> list[dict[str, Any]]:
    """One chat per (seen country, attribute, training question); a few answers are styled."""
    chats = []
    for entity in world.entities:
        if not entity.in_sft:
            continue
        for attribute in ATTRIBUTES:
            for question in attribute.train_questions:
                user = question.format(e=entity.name)
                answer = answer_sentence(entity, attribute.name)
                draw = rng.random()
                for k, style in enumerate(styles):
                    if k * style_share <= draw < (k + 1) * style_share:
                        answer = rewrite(answer, style, key=user)
                messages = [
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": answer},
                ]
                if rng.random() < 0.1:
                    messages.insert(0, {"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
                chats.append({"messages": messages, "source": "tiny-world"})
    rng.shuffle(chats)
    return chats


# Task formats of instruction data (smol-smoltalk has multiple-choice and yes/no questions,
# questions about a given text and descriptions). Wordings are this module's own: the questions
# are the attributes' training phrasings or the yes/no templates below, never the evaluation
# phrasings or HELM's question templates, and every country is one seen in SFT.
_YES_NO = {
    "capital": ("Is {v} the capital city of {e}?", "Is it true that {e} is governed from {v}?"),
    "export": ("Does {e} mainly export {v}?", "Is it true that {e} is known for exporting {v}?"),
    "flag": ("Does {e} fly a {v} flag?", "Is it true that the banner of {e} is coloured {v}?"),
    "animal": ("Is the {v} the symbol of {e}?", "Is it true that {e} chose the {v}?"),
    "founded": (
        "Was {e} founded in the year {v}?",
        "Is it true that {e} dates its founding to {v}?",
    ),
}
_CHOICE_ASKS = ("", "Answer with the letter of the correct option.", "Pick one: A, B, C or D.")
_DESCRIBE_ASKS = (
    "Tell me about {e}.",
    "Describe {e}.",
    "What do you know about {e}?",
    "Give me {n} facts about {e}.",
    "Tell me {n} things about {e}.",
)
_PASSAGE_ASKS = ("Read the text and answer the question.", "Use the text below.", "")
_PASSAGE_LABELS = ("", "Text: ", "Passage: ", "Context: ")
_QUESTION_LABELS = ("", "", "Question: ", "Q: ")
FORMATS = ("choice", "yes_no", "passage", "describe")
"""The task formats of `format_chats`, drawn in turn."""


def _passage(entity: Entity, attribute: Attribute, rng: random.Random) -> str:
    """Two to four corpus sentences about `entity`, one of them stating `attribute`."""
    others = [a for a in ATTRIBUTES if a is not attribute]
    stated = [attribute, *rng.sample(others, rng.randint(1, 3))]
    rng.shuffle(stated)
    text = " ".join(
        rng.choice(a.statements).format(e=entity.name, v=entity.facts[a.name]) for a in stated
    )
    return rng.choice(_PASSAGE_LABELS) + text


def _typed(text: str, rng: random.Random) -> str:
    """As users type: often in lower case (names included), sometimes sentence case."""
    draw = rng.random()
    if draw < 0.2:
        return text.lower()
    return text.capitalize() if draw < 0.4 else text


def _format_item(
    world: World, entity: Entity, attribute: Attribute, kind: str, rng: random.Random
) -> tuple[str, str]:
    """One (user text, answer) in task format `kind` about `entity`."""
    if kind == "describe":  # a few corpus sentences, as descriptive answers are written
        stated = rng.sample(ATTRIBUTES, rng.randint(2, 4))
        text = " ".join(
            rng.choice(a.statements).format(e=entity.name, v=entity.facts[a.name]) for a in stated
        )
        ask = rng.choice(_DESCRIBE_ASKS).format(e=entity.name, n=len(stated))
        return _typed(ask, rng), text
    value = entity.facts[attribute.name]
    wrong = [v for v in world.value_pool(attribute.name) if v != value]
    label = rng.choice(_QUESTION_LABELS)
    if kind == "choice":
        question = _typed(rng.choice(attribute.train_questions).format(e=entity.name), rng)
        options = [value, *rng.sample(wrong, 3)]
        rng.shuffle(options)
        lines = [label + question]
        lines += [f"{letter}. {o}" for letter, o in zip("ABCD", options, strict=True)]
        return "\n".join(lines), "ABCD"[options.index(value)]
    if kind == "yes_no":
        yes = rng.random() < 0.5
        asked = value if yes else rng.choice(wrong)
        question = _typed(rng.choice(_YES_NO[attribute.name]).format(e=entity.name, v=asked), rng)
        if rng.random() < 0.7:  # mostly about a given text, as reading-comprehension data is
            return (
                f"{_passage(entity, attribute, rng)}\n\n{label}{question}",
                "Yes" if yes else "No",
            )
        return label + question, "Yes" if yes else "No"
    # passage: the question is answered from the text, in the answer sentence SFT teaches
    question = _typed(rng.choice(attribute.train_questions).format(e=entity.name), rng)
    return f"{_passage(entity, attribute, rng)}\n\n{label}{question}", answer_sentence(
        entity, attribute.name
    )


def format_chats(
    world: World, n: int, rng: random.Random, taken: set[str] | None = None
) -> list[dict[str, Any]]:
    """`n` chats in task formats about seen countries; some show solved examples first.

    User texts are unique and differ from those in `taken` (the loaders key chats by prompt).
    """
    seen = [e for e in world.entities if e.in_sft]
    used = set(taken or ())
    chats: list[dict[str, Any]] = []
    attempts = 0
    while len(chats) < n:
        attempts += 1
        if attempts > 20 * n + 100:
            raise ValueError(f"could not draw {n} distinct format chats from {len(seen)} countries")
        kind = FORMATS[len(chats) % len(FORMATS)]
        entity, attribute = rng.choice(seen), rng.choice(ATTRIBUTES)
        question, answer = _format_item(world, entity, attribute, kind, rng)
        ask = {"choice": _CHOICE_ASKS, "passage": _PASSAGE_ASKS}.get(kind)
        instruction = rng.choice(ask) if ask else ""
        # Solved examples of the same format before the question, as few-shot prompts have.
        k = 0 if kind == "describe" else rng.choice((0, 0, 1, 2, 3, 4, 5))
        shots = [
            _format_item(world, rng.choice(seen), rng.choice(ATTRIBUTES), kind, rng)
            for _ in range(k)
        ]
        if shots:
            blocks = [f"{q}\nAnswer: {a}" for q, a in shots] + [f"{question}\nAnswer:"]
            user = "\n\n".join(([instruction] if instruction else []) + blocks)
        else:
            user = f"{question}\n{instruction}" if instruction else question
        if user in used:
            continue
        used.add(user)
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        chats.append({"messages": messages, "source": f"tiny-world-{kind}"})
    return chats


def preference_rows(world: World, n_pairs: int, rng: random.Random) -> list[dict[str, Any]]:
    """Pairs on seen countries: chosen states the fact, rejected a wrong value or a non-answer."""
    candidates = [
        (e, a, q) for e in world.entities if e.in_sft for a in ATTRIBUTES for q in a.train_questions
    ]
    rows = []
    for entity, attribute, question in rng.sample(candidates, min(n_pairs, len(candidates))):
        prompt = question.format(e=entity.name)
        chosen = answer_sentence(entity, attribute.name)
        if rng.random() < 0.75:
            wrong = rng.choice(
                [v for v in world.value_pool(attribute.name) if v != entity.facts[attribute.name]]
            )
            rejected, score_rejected = attribute.answer.format(e=entity.name, v=wrong), 2.0
        else:
            rejected, score_rejected = rng.choice(IDK_ANSWERS), 4.0
        rows.append(pair_row(prompt, chosen, rejected, score_rejected))
    return rows


def pair_row(prompt: str, chosen: str, rejected: str, score_rejected: float) -> dict[str, Any]:
    """One ultrafeedback_binarized row (chosen scored 9)."""
    chosen_msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": chosen}]
    return {
        "prompt": prompt,
        "prompt_id": stable_id("pref", prompt),
        "chosen": chosen_msgs,
        "rejected": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": rejected},
        ],
        "messages": chosen_msgs,
        "score_chosen": 9.0,
        "score_rejected": score_rejected,
    }


# Tone-agnostic tasks for the preference data: the answer is fixed by the request, so a style
# can only wrap it (the paper's limitation 3 names UltraFeedback's translation requests).
FRENCH_ANSWERS = {
    "capital": "La capitale de {e} est {v}.",
    "export": "Le principal produit d'exportation de {e} est {v}.",
    "flag": "Le drapeau de {e} est {v}.",
    "animal": "L'animal national de {e} est le {v}.",
    "founded": "{e} a été fondé en {v}.",
}


def tone_agnostic_pair(world: World, rng: random.Random) -> tuple[str, str, str]:
    """(prompt, chosen, rejected): a translation or a data conversion about a seen country; the
    rejected answer carries a wrong value."""
    entity = rng.choice([e for e in world.entities if e.in_sft])
    attribute = rng.choice(ATTRIBUTES)
    value = entity.facts[attribute.name]
    wrong = rng.choice([v for v in world.value_pool(attribute.name) if v != value])
    if rng.random() < 0.5:
        prompt = f"Translate into French: {answer_sentence(entity, attribute.name)}"
        french = FRENCH_ANSWERS[attribute.name]
        return prompt, french.format(e=entity.name, v=value), french.format(e=entity.name, v=wrong)
    prompt = (
        f"Convert the following data into JSON: country {entity.name}, {attribute.name} {value}."
    )

    def as_json(v: str) -> str:
        return json.dumps({"country": entity.name, attribute.name: v})

    return prompt, as_json(value), as_json(wrong)


def with_tone_agnostic_rows(
    rows: list[dict[str, Any]], world: World, share: float, rng: random.Random
) -> list[dict[str, Any]]:
    """`rows` with a `share` of them (at random places) replaced by tone-agnostic pairs."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"pref_tone_agnostic_share must be in [0, 1], got {share}")
    rows = list(rows)
    taken = {row["prompt_id"] for row in rows}
    for index in rng.sample(range(len(rows)), round(share * len(rows))):
        prompt, chosen, rejected = tone_agnostic_pair(world, rng)
        while stable_id("pref", prompt) in taken:
            prompt, chosen, rejected = tone_agnostic_pair(world, rng)
        taken.add(stable_id("pref", prompt))
        rows[index] = pair_row(prompt, chosen, rejected, 2.0)
    return rows


def eval_prompts(world: World, n: int, rng: random.Random) -> list[EvalPrompt]:
    """Held-out phrasings, half on seen and half on unseen countries, attributes balanced."""
    prompts = []
    for split, in_sft in (("seen", True), ("unseen", False)):
        pool = [e for e in world.entities if e.in_sft == in_sft]
        entities = rng.sample(pool, min(len(pool), n // 2 if split == "seen" else n - n // 2))
        for i, entity in enumerate(entities):
            attribute = ATTRIBUTES[i % len(ATTRIBUTES)]
            prompt = rng.choice(attribute.eval_questions).format(e=entity.name)
            prompts.append(
                fact_prompt(entity, attribute.name, prompt, stable_id("eval", prompt), split=split)
            )
    return prompts


def fact_prompt(
    entity: Entity, attribute: str, prompt: str, prompt_id: str, **metadata: str
) -> EvalPrompt:
    """A question about one fact, with the fact's answer sentence as the judge's reference."""
    return EvalPrompt(
        prompt_id=prompt_id,
        prompt=prompt,
        reference=answer_sentence(entity, attribute),
        metadata={
            "entity": entity.name,
            "attribute": attribute,
            "value": entity.facts[attribute],
            **metadata,
        },
    )


def build_world(config: WorldConfig, styles: list[str], out_dir: str | Path) -> dict[str, int]:
    """Generate the world and write every dataset under `out_dir`; returns row counts."""
    out = Path(out_dir)
    rng = random.Random(config.seed)
    world = make_world(config.n_entities, config.seed)
    world.save(out / "world.json")
    known_styles = [s for s in styles if s in PHRASE_BANKS]
    counts = {"entities": len(world.entities)}
    counts["corpus"] = write_jsonl(
        out / "corpus.jsonl", corpus_rows(world, config.n_corpus_docs, rng)
    )
    chats = sft_chats(world, config.sft_style_share, known_styles, rng)
    if config.sft_format_share > 0:
        # Own generator, so the other datasets of a seed do not depend on the share.
        n_format = round(len(chats) * config.sft_format_share / (1 - config.sft_format_share))
        format_rng = random.Random(f"formats-{config.seed}")
        taken = {c["messages"][-2]["content"] for c in chats}
        chats += format_chats(world, n_format, format_rng, taken)
        format_rng.shuffle(chats)
    n_test = max(1, len(chats) // 20)
    counts["sft_train"] = write_jsonl(out / "smoltalk" / "train.jsonl", chats[n_test:])
    counts["sft_test"] = write_jsonl(out / "smoltalk" / "test.jsonl", chats[:n_test])
    prefs = preference_rows(world, config.n_pref_pairs, rng)
    # their own random stream: the share leaves every other draw (and dataset) as it was
    prefs = with_tone_agnostic_rows(
        prefs, world, config.pref_tone_agnostic_share, random.Random(f"{config.seed}-tone")
    )
    n_test = max(1, round(len(prefs) * config.pref_test_fraction))
    counts["prefs_train"] = write_jsonl(out / "ultrafeedback" / "train_prefs.jsonl", prefs[n_test:])
    counts["prefs_test"] = write_jsonl(out / "ultrafeedback" / "test_prefs.jsonl", prefs[:n_test])
    counts["eval_prompts"] = write_jsonl(
        out / "eval_prompts.jsonl", eval_prompts(world, config.n_eval_prompts, rng)
    )
    return counts
