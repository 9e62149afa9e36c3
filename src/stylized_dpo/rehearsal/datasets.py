"""The paper's hub datasets, offline: realistic rows in each dataset's real files and features,
placed in the `datasets` cache so that `datasets.load_dataset(name, split=...)` with
`HF_DATASETS_OFFLINE=1` finds them as it finds a dataset downloaded once before.

- `HuggingFaceTB/smol-smoltalk`: `messages` (list of {content, role}) and `source`; splits train
  and test; chats with and without a system message, multi-turn, code, math, translation,
  non-English, long prompts and long answers, and the bad rows a large crawl has (an empty
  answer, a chat without an assistant turn).
- `HuggingFaceH4/ultrafeedback_binarized`: prompt, prompt_id, chosen, rejected, messages,
  score_chosen, score_rejected; splits train_prefs, test_prefs, train_sft, test_sft, train_gen,
  test_gen; the same kinds of prompts, including tone-agnostic ones (translation, code,
  arithmetic, extraction), prompts over 256 and answers over 1024 Qwen tokens, ties and pairs
  whose chosen and rejected answers are identical.

Each repository's files are written in its hub layout (`data/<split>-00000-of-00001.parquet`)
under `<root>/<org>/<name>/` and prepared into `$HF_DATASETS_CACHE` by the `parquet` builder under
the repository's name, which is what `load_dataset` leaves behind after a download.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stylized_dpo.hashing import concat_digest, text_hash

SMOLTALK = "HuggingFaceTB/smol-smoltalk"
ULTRAFEEDBACK = "HuggingFaceH4/ultrafeedback_binarized"
ULTRAFEEDBACK_SPLITS = (
    "train_prefs",
    "test_prefs",
    "train_sft",
    "test_sft",
    "train_gen",
    "test_gen",
)

TOPICS = [
    "photosynthesis",
    "the French Revolution",
    "black holes",
    "compound interest",
    "the immune system",
    "plate tectonics",
    "machine learning",
    "the water cycle",
    "supply and demand",
    "renewable energy",
    "the Roman Empire",
    "quantum entanglement",
    "sleep hygiene",
    "climate change",
    "vaccines",
]
SENTENCES = [
    "{t} is best understood by looking at its causes and its effects one at a time.",
    "Researchers have studied {t} for decades, and several points are now well established.",
    "A common misconception about {t} is that it happens quickly; in practice it takes time.",
    "The key idea behind {t} is that small changes can add up to large outcomes.",
    "If you want to learn more about {t}, start with an introductory textbook, then reviews.",
    "Historians and scientists still debate some details of {t}, but the broad picture is clear.",
    "One useful way to explain {t} to a beginner is with an everyday analogy.",
    "In short, {t} matters because it shapes the world we live in, often in ways we do not notice.",
    "There are three main factors to consider: scale, timing and the people or systems involved.",
    "Numbers help here: roughly 70 percent of cases follow the typical pattern, 30 percent do not.",
]
NON_ENGLISH = [
    (
        "de",
        "Kannst du mir erklären, wie {t} funktioniert?",
        "Gerne! Bei {t} geht es im Kern darum, dass viele kleine Schritte zusammenwirken. "
        "Zuerst betrachtet man die Ursachen, danach die Folgen.",
    ),
    (
        "es",
        "¿Podrías explicarme qué es {t} en pocas palabras?",
        "¡Claro! {t} se entiende mejor si se analizan primero las causas y luego los efectos. "
        "Es un tema amplio, pero la idea central es sencilla.",
    ),
    (
        "zh",
        "请用简单的语言解释一下{t}。",
        "当然可以。{t}可以从原因和结果两个方面来理解。首先看它是如何开始的，然后看它带来了什么影响。",
    ),
    (
        "fr",
        "Peux-tu m'expliquer {t} simplement ?",
        "Bien sûr ! Pour comprendre {t}, il faut d'abord regarder les causes, puis les effets. "
        "C'est un sujet riche, mais l'idée principale reste simple.",
    ),
]
SYSTEMS = [
    "You are a helpful assistant.",
    "You are an expert tutor. Explain step by step and check the user's understanding.",
    "You are a concise assistant. Answer in at most three sentences.",
]


def _paragraph(rng: random.Random, topic: str, n: int) -> str:
    return " ".join(rng.choice(SENTENCES).format(t=topic) for _ in range(n)).capitalize()


def _long_text(rng: random.Random, topic: str, n_paragraphs: int) -> str:
    return "\n\n".join(_paragraph(rng, topic, 8) for _ in range(n_paragraphs))


def _code_task(rng: random.Random) -> tuple[str, str]:
    name, body = rng.choice(
        [
            (
                "fibonacci",
                "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
            ),
            (
                "is_prime",
                "if n < 2:\n        return False\n"
                "    return all(n % k for k in range(2, int(n**0.5) + 1))",
            ),
            ("reverse_words", "return ' '.join(reversed(s.split()))"),
        ]
    )
    arg = "s" if name == "reverse_words" else "n"
    extra = rng.choice(
        [
            "",
            " Add type hints.",
            " Keep it short.",
            " Include a docstring.",
            " Explain its complexity.",
            " Avoid recursion.",
        ]
    )
    prompt = f"Write a Python function `{name}({arg})` and explain how it works.{extra}"
    answer = (
        f"Here is a simple implementation:\n\n```python\ndef {name}({arg}):\n    {body}\n```\n\n"
        f"The function `{name}` takes `{arg}` and computes the result directly. "
        "Its running time grows with the size of the input, and it has no side effects."
    )
    return prompt, answer


def _math_task(rng: random.Random) -> tuple[str, str]:
    a, b, c = rng.randint(3, 40), rng.randint(2, 12), rng.randint(5, 99)
    prompt = (
        f"A shop sells {a} boxes with {b} apples each and then receives {c} more apples. "
        "How many apples does it have?"
    )
    answer = (
        f"First, {a} boxes x {b} apples = {a * b} apples. Then {a * b} + {c} = {a * b + c}. "
        f"The shop has {a * b + c} apples."
    )
    return prompt, answer


def _translation_task(rng: random.Random, topic: str) -> tuple[str, str]:
    lang, text = rng.choice(
        [
            ("French", f"Le sujet d'aujourd'hui est {topic}, et il est passionnant."),
            ("German", f"Das heutige Thema ist {topic}, und es ist spannend."),
            ("Spanish", f"El tema de hoy es {topic}, y es apasionante."),
        ]
    )
    n = rng.randint(2, 9)
    return (
        f'Translate into {lang}: "Today\'s topic is {topic}, and it is fascinating." '
        f"(sentence {n} of the handout)",
        text,
    )


def _extraction_task(rng: random.Random, topic: str) -> tuple[str, str]:
    passage = _paragraph(rng, topic, 3)
    return (
        "Extract the main subject of the following text and classify its sentiment as "
        f"positive, negative or neutral.\n\n{passage}",
        f"Subject: {topic}. Sentiment: neutral.",
    )


def _prompt_answer(rng: random.Random, kind: str, variant: int = 0) -> tuple[str, str]:
    """One (prompt, answer) of a kind: chat, code, math, translation, extraction, non_english,
    long_prompt (over 256 Qwen tokens with the template), long_answer (over 1024), document
    (a prompt over 4,096 tokens)."""
    topic = rng.choice(TOPICS)
    if kind == "code":
        return _code_task(rng)
    if kind == "math":
        return _math_task(rng)
    if kind == "translation":
        return _translation_task(rng, topic)
    if kind == "extraction":
        return _extraction_task(rng, topic)
    if kind == "non_english":
        _, q, a = NON_ENGLISH[variant % len(NON_ENGLISH)]  # every language in turn
        return q.format(t=topic), a.format(t=topic)
    if kind == "long_prompt":
        return (
            f"Summarise the following notes on {topic} in one paragraph.\n\n"
            + _long_text(rng, topic, 3),
            _paragraph(rng, topic, 4),
        )
    if kind == "document":  # UltraFeedback has a few prompts longer than a 4k context
        return (
            f"Here is a long report on {topic}. List its five main claims.\n\n"
            + _long_text(rng, topic, 40),
            _paragraph(rng, topic, 5),
        )
    if kind == "long_answer":
        return f"Write a detailed essay about {topic}.", _long_text(rng, topic, 12)
    opener = rng.choice(["Can you explain", "What do you know about", "Tell me about", "Describe"])
    aspect = rng.choice(ASPECTS)
    return f"{opener} {topic} {aspect}?", _paragraph(rng, topic, rng.randint(2, 6))


ASPECTS = [
    "in simple terms",
    "for a ten-year-old",
    "with an example",
    "and its history",
    "and why it matters",
    "in two paragraphs",
    "as a scientist would",
    "and its main open questions",
]
KINDS = [
    "chat",
    "chat",
    "code",
    "math",
    "translation",
    "extraction",
    "non_english",
    "long_prompt",
    "long_answer",
]


def smoltalk_rows(n: int, seed: int, split: str) -> list[dict[str, Any]]:
    """smol-smoltalk chats: ~1/3 with a system message, ~1/4 multi-turn, a few bad rows."""
    rng = random.Random(f"{seed}-smoltalk-{split}")
    rows = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        prompt, answer = _prompt_answer(rng, kind, i // len(KINDS))
        messages = []
        if i % 3 == 0:
            messages.append({"content": rng.choice(SYSTEMS), "role": "system"})
        messages += [{"content": prompt, "role": "user"}, {"content": answer, "role": "assistant"}]
        if i % 4 == 1:
            follow, reply = _prompt_answer(rng, "chat")
            messages += [
                {"content": f"Thanks. {follow}", "role": "user"},
                {"content": reply, "role": "assistant"},
            ]
        if i % 17 == 16:
            messages[-1]["content"] = ""  # an empty answer: the loader drops it (empty_message)
        if i % 23 == 22:
            messages = [m for m in messages if m["role"] != "assistant"]  # no_turn
        source = rng.choice(
            ["smol-magpie-ultra", "smol-constraints", "smol-rewrite", "smol-summarize"]
        )
        rows.append({"messages": messages, "source": source})
    return rows


def ultrafeedback_rows(n: int, seed: int, split: str) -> list[dict[str, Any]]:
    """ultrafeedback_binarized rows with every column; a few ties and identical pairs."""
    rng = random.Random(f"{seed}-ultrafeedback-{split}")
    rows = []
    for i in range(n):
        kind = "document" if i % 20 == 10 else KINDS[i % len(KINDS)]
        prompt, chosen = _prompt_answer(rng, kind, i // len(KINDS))
        rejected = rng.choice(
            [
                "I'm not sure about that.",
                _paragraph(rng, rng.choice(TOPICS), 2),
                chosen.split(".")[0] + ".",
            ]
        )
        if i % 19 == 18:
            rejected = chosen  # identical answers: the loader drops them (chosen_equals_rejected)
        score_chosen = float(rng.choice([6, 7, 8, 8.5, 9, 10]))
        score_rejected = (
            score_chosen if i % 11 == 5 else float(rng.randint(1, int(score_chosen) - 1))
        )
        prompt_id = text_hash(prompt, 64)
        user = {"content": prompt, "role": "user"}
        chosen_msgs = [user, {"content": chosen, "role": "assistant"}]
        rows.append(
            {
                "prompt": prompt,
                "prompt_id": prompt_id,
                "chosen": chosen_msgs,
                "rejected": [user, {"content": rejected, "role": "assistant"}],
                "messages": chosen_msgs,
                "score_chosen": score_chosen,
                "score_rejected": score_rejected,
            }
        )
    return rows


def _features(name: str) -> Any:
    import datasets

    message = [{"content": datasets.Value("string"), "role": datasets.Value("string")}]
    if name == SMOLTALK:
        return datasets.Features({"messages": message, "source": datasets.Value("string")})
    return datasets.Features(
        {
            "prompt": datasets.Value("string"),
            "prompt_id": datasets.Value("string"),
            "chosen": message,
            "rejected": message,
            "messages": message,
            "score_chosen": datasets.Value("float64"),
            "score_rejected": datasets.Value("float64"),
        }
    )


def write_repo(root: Path, name: str, splits: dict[str, list[dict[str, Any]]]) -> dict[str, Path]:
    """The repository's parquet files in its hub layout; split -> file."""
    import datasets

    files = {}
    for split, rows in splits.items():
        path = root / name / "data" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_list(rows, features=_features(name)).to_parquet(str(path))
        files[split] = path
    return files


def prepare_cache(name: str, files: dict[str, Path], cache_dir: str | Path) -> Path:
    """Prepare the files into the `datasets` cache under the repository's name (what a first
    `load_dataset(name)` leaves there); returns the prepared folder."""
    from datasets.packaged_modules.parquet.parquet import Parquet

    builder = Parquet(
        cache_dir=str(cache_dir),
        dataset_name=name.split("/")[-1],
        data_files={split: str(path) for split, path in files.items()},
        features=_features(name),
        hash=concat_digest(files.values(), "sha1"),
    )
    # A hub download is filed under `<org>___<name>/default/0.0.0/<commit>`: the builder refuses
    # a repo_id with local data files, so the name and config id are set after construction.
    builder.repo_id = name
    builder.config_id = "default"
    builder._cache_dir = builder._output_dir = builder._build_cache_dir()
    builder.download_and_prepare()
    return Path(builder.cache_dir)


def write_datasets(
    root: Path, cache_dir: Path, sizes: dict[str, int], seed: int = 0
) -> dict[str, Path]:
    """Both datasets: files under `root`, prepared into `cache_dir`; name -> prepared folder.
    `sizes`: rows of smol-smoltalk train/test and of UltraFeedback's prefs splits (`sft_train`,
    `sft_test`, `prefs_train`, `prefs_test`; the sft/gen splits get 8 rows each)."""
    makers: dict[str, tuple[Callable[..., list[dict[str, Any]]], dict[str, int]]] = {
        SMOLTALK: (smoltalk_rows, {"train": sizes["sft_train"], "test": sizes["sft_test"]}),
        ULTRAFEEDBACK: (
            ultrafeedback_rows,
            {
                "train_prefs": sizes["prefs_train"],
                "test_prefs": sizes["prefs_test"],
                **{s: 8 for s in ULTRAFEEDBACK_SPLITS[2:]},
            },
        ),
    }
    out = {}
    for name, (make, counts) in makers.items():
        splits = {split: make(n, seed, split) for split, n in counts.items()}
        out[name] = prepare_cache(name, write_repo(root, name, splits), cache_dir)
    return out
