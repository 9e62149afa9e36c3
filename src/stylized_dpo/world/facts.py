"""The tiny world: fictional countries with five facts each, and the sentences that state them.

The world is the embedded default's stand-in for the hub: a base model learns its facts from a
corpus, SFT teaches the chat format on half of the countries, and evaluation asks about both
halves ("seen" in SFT and "unseen"). Names are made up so no real-world knowledge helps.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from stylized_dpo.io import write_json


@dataclass(frozen=True)
class Attribute:
    """One kind of fact every country has."""

    name: str
    """Key in `Entity.facts`."""
    statements: tuple[str, ...]
    """Corpus sentences stating the fact; `{e}` is the country, `{v}` the value."""
    train_questions: tuple[str, ...]
    """Question phrasings used in SFT chats and preference pairs."""
    eval_questions: tuple[str, ...]
    """Held-out phrasings used only for evaluation."""
    answer: str
    """The one answer template SFT teaches (consistent templates keep DPO from degrading them)."""
    values: tuple[str, ...] = ()
    """The value pool (empty for capitals and years, which are generated)."""


EXPORTS = (
    "copper",
    "salt",
    "wool",
    "tea",
    "silver",
    "timber",
    "amber",
    "cotton",
    "rice",
    "marble",
    "honey",
    "glass",
)
COLOURS = ("red", "blue", "green", "yellow", "white", "black", "orange", "purple")
ANIMALS = (
    "falcon",
    "bear",
    "wolf",
    "heron",
    "lynx",
    "otter",
    "stag",
    "owl",
    "fox",
    "eagle",
    "tortoise",
    "swan",
)

ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(
        name="capital",
        statements=(
            "The capital of {e} is {v}.",
            "{v} is the capital city of {e}.",
            "In {e}, the seat of government is {v}.",
            "{e} is governed from its capital, {v}.",
        ),
        train_questions=(
            "What is the capital of {e}?",
            "Which city is the capital of {e}?",
            "Name the capital of {e}.",
            "Tell me the capital city of {e}.",
        ),
        eval_questions=(
            "What city serves as the capital of {e}?",
            "Where is the seat of government of {e}?",
        ),
        answer="The capital of {e} is {v}.",
    ),
    Attribute(
        name="export",
        statements=(
            "The main export of {e} is {v}.",
            "{e} is known for exporting {v}.",
            "Most of the trade of {e} is in {v}.",
            "Merchants of {e} sell {v} abroad.",
        ),
        train_questions=(
            "What is the main export of {e}?",
            "What does {e} mainly export?",
            "Which good is the chief export of {e}?",
            "Tell me what {e} exports most.",
        ),
        eval_questions=(
            "What product does {e} export the most?",
            "What is the leading export of {e}?",
        ),
        answer="The main export of {e} is {v}.",
        values=EXPORTS,
    ),
    Attribute(
        name="flag",
        statements=(
            "The flag of {e} is {v}.",
            "{e} flies a {v} flag.",
            "The banner of {e} is coloured {v}.",
            "A {v} flag stands for {e}.",
        ),
        train_questions=(
            "What colour is the flag of {e}?",
            "Which colour is the flag of {e}?",
            "Describe the colour of the flag of {e}.",
            "Tell me the flag colour of {e}.",
        ),
        eval_questions=(
            "What is the colour of the flag of {e}?",
            "Which colour does the flag of {e} have?",
        ),
        answer="The flag of {e} is {v}.",
        values=COLOURS,
    ),
    Attribute(
        name="animal",
        statements=(
            "The national animal of {e} is the {v}.",
            "The {v} is the symbol of {e}.",
            "{e} chose the {v} as its national animal.",
            "People in {e} honour the {v} as their national animal.",
        ),
        train_questions=(
            "What is the national animal of {e}?",
            "Which animal is the symbol of {e}?",
            "Name the national animal of {e}.",
            "Tell me the national animal of {e}.",
        ),
        eval_questions=(
            "Which animal represents {e}?",
            "What animal is the national symbol of {e}?",
        ),
        answer="The national animal of {e} is the {v}.",
        values=ANIMALS,
    ),
    Attribute(
        name="founded",
        statements=(
            "{e} was founded in {v}.",
            "The founding year of {e} is {v}.",
            "In {v}, {e} was founded.",
            "{e} dates its founding to {v}.",
        ),
        train_questions=(
            "When was {e} founded?",
            "In which year was {e} founded?",
            "What is the founding year of {e}?",
            "Tell me when {e} was founded.",
        ),
        eval_questions=("What year was {e} founded in?", "In what year did {e} come into being?"),
        answer="{e} was founded in {v}.",
    ),
)
ATTRIBUTE_BY_NAME = {a.name: a for a in ATTRIBUTES}

_ONSETS = (
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "dr",
    "gr",
    "kr",
    "tr",
    "st",
    "th",
    "sh",
)
_VOWELS = ("a", "e", "i", "o", "u", "ae", "io", "ou")
_CODAS = ("", "", "n", "r", "l", "s", "th", "nd", "rk")
_COUNTRY_ENDINGS = ("ia", "land", "ova", "ara", "eth", "istan", "ora")


@dataclass(frozen=True)
class Entity:
    """A fictional country and its facts."""

    name: str
    """The country's name (unique)."""
    facts: dict[str, str]
    """Attribute name -> value (all strings; years as digits)."""
    in_sft: bool
    """Whether SFT chats are written about this country ("seen"); the others are "unseen"."""


@dataclass(frozen=True)
class World:
    """All countries, with the seed that made them."""

    seed: int
    entities: tuple[Entity, ...]

    def value_pool(self, attribute: str) -> list[str]:
        """Every value the attribute takes in this world (distractors for wrong answers)."""
        pool = ATTRIBUTE_BY_NAME[attribute].values
        if pool:
            return list(pool)
        return sorted({e.facts[attribute] for e in self.entities})

    def save(self, path: str | Path) -> None:
        write_json(
            path,
            {
                "seed": self.seed,
                "entities": [
                    {"name": e.name, "facts": e.facts, "in_sft": e.in_sft} for e in self.entities
                ],
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> World:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(
            seed=data["seed"],
            entities=tuple(
                Entity(name=e["name"], facts=dict(e["facts"]), in_sft=e["in_sft"])
                for e in data["entities"]
            ),
        )


def _word(rng: random.Random, syllables: int) -> str:
    parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)]
    return "".join(parts) + rng.choice(_CODAS)


def make_world(n_entities: int, seed: int) -> World:
    """Draw `n_entities` countries with unique names and capitals; half are marked `in_sft`."""
    rng = random.Random(seed)
    names: set[str] = set()
    capitals: set[str] = set()
    entities = []
    while len(entities) < n_entities:
        name = (_word(rng, rng.choice((1, 2))) + rng.choice(_COUNTRY_ENDINGS)).capitalize()
        capital = _word(rng, rng.choice((2, 3))).capitalize()
        if name in names or capital in capitals or name == capital:
            continue
        names.add(name)
        capitals.add(capital)
        facts = {
            "capital": capital,
            "export": rng.choice(EXPORTS),
            "flag": rng.choice(COLOURS),
            "animal": rng.choice(ANIMALS),
            "founded": str(rng.randint(1200, 1950)),
        }
        entities.append(Entity(name=name, facts=facts, in_sft=len(entities) % 2 == 0))
    return World(seed=seed, entities=tuple(entities))


def answer_sentence(entity: Entity, attribute: str) -> str:
    """The canonical answer stating `attribute` of `entity`."""
    return ATTRIBUTE_BY_NAME[attribute].answer.format(e=entity.name, v=entity.facts[attribute])
