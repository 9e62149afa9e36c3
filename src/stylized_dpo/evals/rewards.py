"""What scores a model's answer against the baseline's: the win-rate backends (config
`win_rates.backend`), each a `WinRateBackend` named in `WIN_RATE_BACKENDS`.

- `reference` — STAND-IN (embedded default, offline): the sum of the reference judge's four
  scores (`reference.reference_score`, 4-20), so it rewards the correct fact stated plainly.
- `reward_api` — a reward model served behind an OpenAI-compatible chat endpoint, as NVIDIA
  serves llama-3.1-nemotron-70b-reward (build.nvidia.com / NIM): the conversation
  (user prompt, assistant answer) is sent to `chat/completions`; NIM documents that a reward
  model returns its scores in the message content as comma-separated `name:score` pairs
  (`reward:-25.5` for this model, `helpfulness:...,correctness:...` for HelpSteer-trained ones).
  The score named `reward_key` (default `reward`) is used; a reply without it is invalid and
  retried, then failed. Retries, backoff, key-from-env and the disk cache are
  `stylized_dpo/api.py`'s.
- `reward_model` — a local `AutoModelForSequenceClassification` with one output (e.g. a
  Transformers reward model); the conversation is rendered with its tokenizer's chat template.
- `pairwise_judge` — not a reward: an LLM judge at an OpenAI-compatible endpoint (`model`,
  `base_url`) reads the prompt and both answers (`prompt`: config/prompts/pairwise_judge.txt)
  and ends its reply with `Verdict: A`, `Verdict: B` or `Verdict: tie`. Each pair is judged in
  both orders (model answer first, then baseline answer first); the model wins only when both
  orders prefer it, loses only when both prefer the baseline, and every other combination
  (a disagreement between the orders, or a tie) is a tie — a judge that favours a position
  cannot turn that bias into wins (as MT-Bench guards its pairwise judge). A reply without
  exactly one verdict, or cut off at `max_tokens`, is invalid: asked again, then failed.
  Retries, backoff, key-from-env and the disk cache (keyed by judge model, template hash,
  prompt and both answers in order) are `stylized_dpo/api.py`'s.
A pair with a failed reward (or a failed verdict in either order) is `None` in the scores,
dropped and counted by `winrate.compute_win_rates`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from stylized_dpo.api import (
    Call,
    CallStats,
    InvalidReply,
    batch_ask,
    reply_content,
)
from stylized_dpo.evals.reference import GroundTruth
from stylized_dpo.hashing import cache_key, text_hash
from stylized_dpo.records import JUDGE_CRITERIA, Generation

if TYPE_CHECKING:
    from stylized_dpo.evals.winrate import WinRateConfig

PathLike = str | os.PathLike[str] | None

Answers = dict[str, dict[str, Generation]]
"""model -> prompt id -> its answer."""


def parse_reward_content(content: Any, key: str) -> float:
    """The `key` score of a reward reply `name:score[,name:score...]` (NIM's documented form)."""
    if not isinstance(content, str) or not content.strip():
        raise InvalidReply("empty reward reply")
    scores: dict[str, float] = {}
    for pair in content.split(","):
        name, sep, value = pair.partition(":")
        if not sep:
            raise InvalidReply(f"not a name:score pair: {pair.strip()[:80]!r}")
        try:
            scores[name.strip().lower()] = float(value)
        except ValueError as e:
            raise InvalidReply(f"score of '{name.strip()}' is not a number: {value!r}") from e
    if key.lower() not in scores:
        raise InvalidReply(f"no '{key}' in the reply (got {sorted(scores)})")
    result = scores[key.lower()]
    if not math.isfinite(result):
        raise InvalidReply(f"'{key}' is not finite: {result}")
    return result


def rewards_api(
    pairs: list[tuple[str, str]], config: WinRateConfig, client: Any = None
) -> tuple[list[float | None], CallStats]:
    """Rewards of (prompt, answer) pairs from a reward endpoint; None where it failed."""
    model = config.reward_model()
    unique = {cache_key("reward", model, p, r): (p, r) for p, r in pairs}

    def call(key: str) -> Call:
        prompt, answer = unique[key]
        return Call(
            key,
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
        )

    def parse(data: dict[str, Any]) -> float:
        return parse_reward_content(reply_content(data, allow_truncated=True), config.reward_key)

    results, stats = batch_ask(
        list(unique),
        call,
        parse,
        model,
        config,
        config.cache_dir,
        "win_rates.api_key_env",
        desc=f"reward {model}",
        client=client,
    )
    keys = [cache_key("reward", model, p, r) for p, r in pairs]
    return [results.get(k) for k in keys], stats


def rewards_local(pairs: list[tuple[str, str]], config: WinRateConfig) -> list[float | None]:
    """Rewards from a local sequence-classification model (one logit), batched, right-padded."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from stylized_dpo.model import resolve_device

    name = config.reward_model()
    device = resolve_device(config.device)
    tokenizer = AutoTokenizer.from_pretrained(name)
    model = (
        AutoModelForSequenceClassification.from_pretrained(name, dtype=getattr(torch, config.dtype))
        .to(device)
        .eval()
    )
    if model.config.num_labels != 1:
        raise ValueError(f"{name} has {model.config.num_labels} outputs; a reward model has one")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False
        )
        for p, r in pairs
    ]
    out: list[float | None] = []
    with torch.inference_mode():
        for i in range(0, len(texts), config.batch_size):
            enc = tokenizer(
                texts[i : i + config.batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(device)
            # The model reads its score at the last token that is not padding (right padding).
            logits = model(**enc).logits
            out.extend(float(x) for x in logits[:, 0].float().cpu())
    return out


_PAIRWISE_PLACEHOLDER = re.compile(r"\{(question|answer_a|answer_b)\}")
_VERDICT = re.compile(r"verdict\s*:\s*[*_`\[(]*\s*(A|B|tie)\b", re.IGNORECASE)


def render_pairwise(template: str, question: str, answer_a: str, answer_b: str) -> str:
    """Fill `{question}`, `{answer_a}`, `{answer_b}` in one pass (braces inside the filled texts
    are never re-read as placeholders)."""
    for name in ("{question}", "{answer_a}", "{answer_b}"):
        if name not in template:
            raise ValueError(f"the pairwise judge template must contain {name}")
    values = {"question": question, "answer_a": answer_a, "answer_b": answer_b}
    return _PAIRWISE_PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def parse_verdict(content: Any) -> str:
    """`A`, `B` or `tie` from a pairwise judge's reply; exactly one distinct verdict, else
    `InvalidReply`."""
    if not isinstance(content, str) or not content.strip():
        raise InvalidReply("empty reply")
    found = {m.group(1).upper() for m in _VERDICT.finditer(content)}
    if len(found) != 1:
        raise InvalidReply(
            "no 'Verdict: A|B|tie' line" if not found else f"conflicting verdicts {sorted(found)}"
        )
    verdict = found.pop()
    return "tie" if verdict == "TIE" else verdict


def _parse_verdict_reply(data: dict[str, Any]) -> str:
    return parse_verdict(reply_content(data))


def pairwise_outcome(model_first: str, model_second: str) -> float:
    """The model's score against the baseline from the verdicts of both orders: `model_first`
    when the model's answer was A, `model_second` when it was B. 1 win, 0 loss, 0.5 tie; orders
    that disagree are a tie."""
    first = {"A": 1.0, "B": 0.0, "tie": 0.5}[model_first]
    second = {"A": 0.0, "B": 1.0, "tie": 0.5}[model_second]
    return first if first == second else 0.5


def pairwise_verdicts(
    triples: list[tuple[str, str, str]], config: WinRateConfig, client: Any = None
) -> tuple[list[str | None], CallStats]:
    """The judge's verdict for each (prompt, answer A, answer B); None where it failed."""
    model = config.reward_model()
    template = Path(config.prompt).read_text(encoding="utf-8")
    render_pairwise(template, "", "", "")  # fail early on a template without the placeholders
    template_id = text_hash(template)
    unique = {cache_key("pairwise", model, template_id, *t): t for t in triples}

    def call(key: str) -> Call:
        return Call(
            key,
            [{"role": "user", "content": render_pairwise(template, *unique[key])}],
            {"temperature": config.temperature, "max_tokens": config.max_tokens},
        )

    results, stats = batch_ask(
        list(unique),
        call,
        _parse_verdict_reply,
        model,
        config,
        config.cache_dir,
        "win_rates.api_key_env",
        desc=f"pairwise {model}",
        client=client,
    )
    keys = [cache_key("pairwise", model, template_id, *t) for t in triples]
    return [results.get(k) for k in keys], stats


# --------------------------------------------------------------------------------------------
# The backends


@dataclass
class Versus:
    """Every model's answers scored against the baseline's."""

    scores: dict[tuple[str, str], tuple[float, float] | None]
    """(model, prompt id) -> (the model's score, the baseline's), None where one failed."""
    pairs_scored: int
    """Answers (or ordered pairs, for a pairwise judge) sent to the scorer."""
    stats: dict[str, Any] = field(default_factory=dict)
    """API counters for the run report (empty for a local scorer)."""


class WinRateBackend(Protocol):
    """Scores the answers of `others` against `baseline`'s on the `chosen` prompts."""

    def versus(
        self, gens: Answers, baseline: str, others: Sequence[str], chosen: Sequence[str]
    ) -> Versus: ...


class RewardBackend:
    """A scalar reward per answer: each answer (the baseline's too) is scored once."""

    def rewards(self, answers: list[Generation]) -> tuple[list[float | None], CallStats | None]:
        raise NotImplementedError

    def versus(
        self, gens: Answers, baseline: str, others: Sequence[str], chosen: Sequence[str]
    ) -> Versus:
        keys = list(
            dict.fromkeys((m, pid) for m in [baseline, *others] for pid in chosen if pid in gens[m])
        )
        values, stats = self.rewards([gens[m][pid] for m, pid in keys])
        reward = dict(zip(keys, values, strict=True))
        scores = {
            (m, pid): (reward[(m, pid)], reward[(baseline, pid)])  # type: ignore[misc]
            if reward.get((m, pid)) is not None and reward[(baseline, pid)] is not None
            else None
            for m in others
            for pid in chosen
            if pid in gens[m]
        }
        return Versus(scores, len(keys), stats.to_dict() if stats is not None else {})


class ReferenceReward(RewardBackend):
    """STAND-IN: the sum of the reference judge's four scores."""

    def __init__(
        self, config: WinRateConfig, prompts_path: PathLike, world_path: PathLike, client: Any
    ):
        if prompts_path is None or world_path is None:
            raise ValueError("the reference win-rate backend needs the eval prompts and the world")
        self.truth = GroundTruth.load(prompts_path, world_path)

    def rewards(self, answers: list[Generation]) -> tuple[list[float | None], CallStats | None]:
        out: list[float | None] = []
        for g in answers:
            s = self.truth.score(g, self.truth.prompts[g.prompt_id])
            out.append(float(sum(getattr(s, c) for c in JUDGE_CRITERIA)))
        return out, None


class RewardAPI(RewardBackend):
    """A reward model behind an OpenAI-compatible endpoint (`rewards_api`)."""

    def __init__(
        self, config: WinRateConfig, prompts_path: PathLike, world_path: PathLike, client: Any
    ):
        self.config, self.client = config, client

    def rewards(self, answers: list[Generation]) -> tuple[list[float | None], CallStats | None]:
        pairs = [(g.prompt, g.response) for g in answers]
        return rewards_api(pairs, self.config, client=self.client)


class LocalRewardModel(RewardBackend):
    """A local sequence-classification reward model (`rewards_local`)."""

    def __init__(
        self, config: WinRateConfig, prompts_path: PathLike, world_path: PathLike, client: Any
    ):
        self.config = config

    def rewards(self, answers: list[Generation]) -> tuple[list[float | None], CallStats | None]:
        return rewards_local([(g.prompt, g.response) for g in answers], self.config), None


class PairwiseJudge:
    """An LLM judge reading both answers, in both orders (`pairwise_verdicts`)."""

    def __init__(
        self, config: WinRateConfig, prompts_path: PathLike, world_path: PathLike, client: Any
    ):
        self.config, self.client = config, client

    def versus(
        self, gens: Answers, baseline: str, others: Sequence[str], chosen: Sequence[str]
    ) -> Versus:
        base = gens[baseline]
        pairs = [(m, pid) for m in others for pid in chosen if pid in gens[m] and pid in base]
        triples = []
        for m, pid in pairs:
            prompt, mine, theirs = base[pid].prompt, gens[m][pid].response, base[pid].response
            triples += [(prompt, mine, theirs), (prompt, theirs, mine)]
        verdicts, stats = pairwise_verdicts(triples, self.config, client=self.client)
        scores: dict[tuple[str, str], tuple[float, float] | None] = {}
        for i, key in enumerate(pairs):
            first, second = verdicts[2 * i], verdicts[2 * i + 1]
            if first is None or second is None:
                scores[key] = None
            else:
                # the model's score against the baseline (1 win, 0.5 tie, 0 loss) and its complement
                v = pairwise_outcome(first, second)
                scores[key] = (v, 1.0 - v)
        return Versus(scores, 2 * len(scores), stats.to_dict())


WIN_RATE_BACKENDS: dict[str, Callable[..., WinRateBackend]] = {
    "reference": ReferenceReward,
    "reward_api": RewardAPI,
    "reward_model": LocalRewardModel,
    "pairwise_judge": PairwiseJudge,
}
"""Config `win_rates.backend` -> its class, built with (config, eval prompts path, world path,
client); the paths are None when the run has no ground truth."""
