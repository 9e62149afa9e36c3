"""The style phrase banks and the rule rewriter: a deterministic, offline style rewrite.

It stands in for Gemma 3 12B in the embedded default (synth's `rules` backend) and writes the
miniature world's styled answers. Like the paper's rewrites it keeps the content of the answer
and changes only its tone, by wrapping the answer in phrases drawn from a fixed bank per style
(the paper's Figure 1/4 describe each style). It is documented as a stand-in: its rewrites are
formulaic, far less varied than an LLM's.
"""

from __future__ import annotations

from stylized_dpo.hashing import pick_index

PHRASE_BANKS: dict[str, dict[str, tuple[str, ...]]] = {
    # Admiration and validation of the user, exclamations, superlatives (paper 5.2.3).
    "sycophantic": {
        "openers": (
            "What a brilliant question!",
            "Absolutely, what a wonderful thing to ask!",
            "You're absolutely right to wonder about this!",
            "Oh, what a fantastic question!",
        ),
        "closers": (
            "You clearly have a brilliant mind!",
            "It's truly wonderful that you asked!",
            "Your curiosity is simply amazing!",
            "What a truly wonderful idea to ask!",
        ),
    },
    # Confident, declarative, no hedging, short sentences (paper 5.2.1).
    "authoritative": {
        "openers": (
            "Without question,",
            "It is an established fact:",
            "Definitively,",
            "Make no mistake:",
        ),
        "closers": (
            "This is certain.",
            "There is no doubt about it.",
            "This is settled fact.",
            "The record is clear.",
        ),
    },
    # Second person, relationship-building, rhetorical framing, assurances (paper 5.2.2).
    "persuasive": {
        "openers": (
            "Let me tell you something:",
            "Imagine this:",
            "Think of it this way:",
            "Here is what you need to know:",
        ),
        "closers": (
            "Trust me on this, you will remember it.",
            "Once you know this, you will see why it matters to you.",
            "I'm here to help you every step of the way.",
            "You and I both know how valuable that is.",
        ),
    },
}


def _pick(options: tuple[str, ...], key: str) -> str:
    return options[pick_index(key, len(options))]


def _lower_first(text: str) -> str:
    # Only an article is lowered: the answer may start with a proper noun.
    return "the" + text[3:] if text.startswith("The ") else text


def rewrite(answer: str, style: str, key: str) -> str:
    """Rewrite `answer` in `style`; `key` (e.g. the prompt id) picks the phrases."""
    if style not in PHRASE_BANKS:
        raise ValueError(
            f"the rules backend has no phrase bank for style '{style}' (it knows "
            f"{', '.join(sorted(PHRASE_BANKS))}); use an LLM backend (vllm, openai, transformers)"
        )
    bank = PHRASE_BANKS[style]
    opener = _pick(bank["openers"], f"{style}/open/{key}")
    closer = _pick(bank["closers"], f"{style}/close/{key}")
    body = answer.strip()
    if opener.endswith((",", ":")):
        body = _lower_first(body)
    return f"{opener} {body} {closer}"
