"""The sycophancy probe's multiple-choice items: questions about the tiny world's facts in the
held-out evaluation phrasings with distractors from the attribute's value pool (seeded), or a
local JSONL file of `{"question", "choices", "answer"}` items."""

from __future__ import annotations

import os
import random
import string
from dataclasses import dataclass

from stylized_dpo.io import DataError, iter_json_lines
from stylized_dpo.records import lone_surrogate
from stylized_dpo.world.facts import ATTRIBUTES, World

LETTERS = string.ascii_uppercase
INSTRUCTION = "Answer with the letter."


@dataclass(frozen=True)
class McItem:
    """One multiple-choice question; `answer` is the index of the right option."""

    item_id: str
    question: str
    choices: tuple[str, ...]
    answer: int

    def prompt(self) -> str:
        options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(self.choices))
        return f"{self.question}\n{options}\n{INSTRUCTION}"


def world_items(world: World, n: int, seed: int, n_choices: int = 4) -> list[McItem]:
    """`n` seeded questions about the world's facts, each with `n_choices` options."""
    rng = random.Random(f"sycophancy-{seed}")
    pairs = [(e, a) for e in world.entities for a in ATTRIBUTES]
    rng.shuffle(pairs)
    items: list[McItem] = []
    for entity, attribute in pairs:
        if len(items) == n:
            break
        gold = entity.facts[attribute.name]
        pool = sorted(set(world.value_pool(attribute.name)) - {gold})
        if len(pool) < n_choices - 1:
            continue
        choices = [gold, *rng.sample(pool, n_choices - 1)]
        rng.shuffle(choices)
        question = rng.choice(attribute.eval_questions).format(e=entity.name)
        items.append(McItem(f"syc-{len(items):04d}", question, tuple(choices), choices.index(gold)))
    if len(items) < n:
        print(f"only {len(items)} multiple-choice items could be built (asked for {n})")
    return items


def read_local_items(path: str | os.PathLike[str], n: int) -> list[McItem]:
    """The first `n` items of a JSONL file of {question, choices, answer[, id]}."""
    items: list[McItem] = []
    seen: set[str] = set()
    for line, row in iter_json_lines(path):
        if not isinstance(row, dict):
            raise DataError(path, line, None, "not a JSON object")
        question, choices, answer = row.get("question"), row.get("choices"), row.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise DataError(path, line, "question", "missing or empty")
        if (
            not isinstance(choices, list)
            or not 2 <= len(choices) <= 26
            or not all(isinstance(c, str) and c.strip() for c in choices)
            or len(set(choices)) != len(choices)
        ):
            raise DataError(path, line, "choices", "need 2-26 distinct non-empty strings")
        for name, text in [("question", question), *(("choices", c) for c in choices)]:
            surrogate = lone_surrogate(text)
            if surrogate:
                raise DataError(path, line, name, f"holds {surrogate}: not valid Unicode")
        if isinstance(answer, str) and len(answer) == 1 and answer.upper() in LETTERS:
            index = LETTERS.index(answer.upper())
            if index >= len(choices):
                raise DataError(path, line, "answer", f"letter {answer} has no option")
        elif isinstance(answer, str) and answer in choices:
            index = choices.index(answer)
        elif isinstance(answer, int) and not isinstance(answer, bool):
            if not 0 <= answer < len(choices):
                raise DataError(path, line, "answer", f"index {answer} out of range")
            index = answer
        else:
            raise DataError(
                path, line, "answer", "must be an option letter, an option's text or index"
            )
        item_id = str(row.get("id", f"mc-{line:05d}"))
        if item_id in seen:
            raise DataError(path, line, "id", f"duplicate id {item_id}")
        seen.add(item_id)
        items.append(McItem(item_id, question.strip(), tuple(choices), index))
        if len(items) == n:
            break
    if len(items) < n:
        print(f"only {len(items)} items in {path} (asked for {n})")
    return items
