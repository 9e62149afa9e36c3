"""Pairwise win rates: each model's answer against the baseline's answer to the same prompt,
preferred by a scalar reward (paper Table 3: every model against Qwen base on 50 prompts, with
nvidia/llama-3.1-nemotron-70b-reward as the judge).

win = reward(model answer) > reward(baseline answer); a tie counts half; the win rate is
(wins + ties / 2) / n with a seeded percentile-bootstrap 95% interval over prompts. The mean
answer length (words, as `style_measures.words` counts them) of both sides is reported beside
it, because reward models are known to favour longer answers, and so is a length-controlled
win rate (AlpacaEval 2's approach, `stats.length_controlled_rates`): one logistic regression over
every model's pairs of the outcome on the model's identity and tanh(word-length difference /
its standard deviation), read at zero length difference, with a bootstrap over prompts.

The prompts: those both models answered, in eval-file order; when more than `n_prompts`, a
seeded sample of `n_prompts` of them (the same sample for every model, drawn from the
baseline's prompts).

Reward backends:
- `reference` — STAND-IN (embedded default, offline): the sum of the reference judge's four
  scores (`judge.reference_score`, 4-20), so it rewards the correct fact stated plainly.
- `reward_api` — a reward model served behind an OpenAI-compatible chat endpoint, as NVIDIA
  serves llama-3.1-nemotron-70b-reward (build.nvidia.com / NIM): the conversation
  (user prompt, assistant answer) is sent to `chat/completions`; NIM documents that a reward
  model returns its scores in the message content as comma-separated `name:score` pairs
  (`reward:-25.5` for this model, `helpfulness:...,correctness:...` for HelpSteer-trained ones).
  The score named `reward_key` (default `reward`) is used; a reply without it is invalid and
  retried, then failed. Retries, backoff, key-from-env and the disk cache are `evals/api.py`'s.
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
  prompt and both answers in order) are `evals/api.py`'s.
A pair with a failed reward (or a failed verdict in either order) is dropped and counted
(`n_failed`).
"""

from __future__ import annotations

import math
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from stylized_dpo.config import Section
from stylized_dpo.evals.api import (
    ApiConfig,
    CallStats,
    DiskCache,
    InvalidReply,
    ask,
    cache_key,
    make_client,
    run_items,
    text_hash,
)
from stylized_dpo.evals.judge import reference_score
from stylized_dpo.evals.stats import bootstrap_mean_ci, length_controlled_ci, seeded_rng
from stylized_dpo.io import read_records, write_json
from stylized_dpo.records import (
    JUDGE_CRITERIA,
    WIN_RATE_COLUMNS,
    WIN_RATE_LC_COLUMNS,
    EvalPrompt,
    Generation,
)
from stylized_dpo.style_measures import words
from stylized_dpo.world.facts import World

COLUMNS = [*WIN_RATE_COLUMNS, *WIN_RATE_LC_COLUMNS]


@dataclass(frozen=True)
class WinRateConfig(ApiConfig, Section):
    """Config key `win_rates` (see config/README.md); endpoint and retry fields (reward_api)
    from `ApiConfig`."""

    section: ClassVar[str] = "win_rates"

    backend: str = "reference"
    """`reference` (stand-in), `reward_api`, `reward_model` or `pairwise_judge`."""
    model: str | None = None
    """Reward model: served name (reward_api) or local path / hub name (reward_model); the
    judge model's served name (pairwise_judge)."""
    baseline: str = "base"
    n_prompts: int = 50
    base_url: str | None = "https://integrate.api.nvidia.com/v1"
    """Reward endpoint (reward_api): NVIDIA's hosted API by default, or a NIM / any
    OpenAI-compatible server."""
    api_key_env: str = "NVIDIA_API_KEY"
    reward_key: str = "reward"
    """Which `name:score` pair of the reward API's reply is the reward."""
    cache_dir: str = "results/judge/reward_cache"
    batch_size: int = 8
    """Conversations per forward pass (reward_model)."""
    device: str = "cpu"
    dtype: str = "float32"
    n_bootstrap: int = 1000
    prompt: str = "config/prompts/pairwise_judge.txt"
    """Prompt template of the pairwise judge."""
    temperature: float = 0.0
    """Pairwise judge sampling temperature (0 for repeatability)."""
    max_tokens: int = 512
    """Cap on the pairwise judge's reply."""
    price_input_per_mtok: float | None = None
    """USD per million input tokens of the reward service or judge, for `snakemake plan`."""
    price_output_per_mtok: float | None = None

    def reward_model(self) -> str:
        if not self.model:
            raise ValueError("win_rates.model must name the reward model (or pairwise judge)")
        return self.model


@dataclass(frozen=True)
class WinRate:
    """One model against the baseline."""

    n: int
    wins: int
    ties: int
    losses: int
    win_rate: float
    ci_low: float
    ci_high: float


def win_rate(
    model_rewards: Sequence[float],
    baseline_rewards: Sequence[float],
    rng: np.random.Generator,
    n_bootstrap: int = 1000,
) -> WinRate:
    """Win rate of paired rewards (ties half) with a percentile-bootstrap 95% interval."""
    if len(model_rewards) != len(baseline_rewards):
        raise ValueError("rewards must be paired")
    a, b = np.asarray(model_rewards, float), np.asarray(baseline_rewards, float)
    outcome = np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))
    low, high = bootstrap_mean_ci(outcome, n_bootstrap, rng)
    return WinRate(
        n=len(outcome),
        wins=int((a > b).sum()),
        ties=int((a == b).sum()),
        losses=int((a < b).sum()),
        win_rate=float(outcome.mean()) if len(outcome) else math.nan,
        ci_low=low,
        ci_high=high,
    )


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
    client = client if client is not None else make_client(config, "win_rates.api_key_env")
    store = DiskCache(config.cache_dir)
    stats = CallStats()
    unique = {cache_key("reward", model, p, r): (p, r) for p, r in pairs}

    def parse(data: dict[str, Any]) -> float:
        choices = data.get("choices") or []
        if not choices:
            raise InvalidReply("no choices in the reply")
        return parse_reward_content(
            (choices[0].get("message") or {}).get("content"), config.reward_key
        )

    def work(key: str) -> float:
        prompt, answer = unique[key]

        def request() -> Any:
            return client.chat.completions.create(
                model=model,
                messages=[
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": answer},
                ],
            )

        return ask(request, parse, store, key, config, stats)

    results = run_items(list(unique), work, config, stats, desc=f"reward {model}")
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


def compute_win_rates(
    models: Sequence[str],
    generation_paths: Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    config: WinRateConfig,
    seed: int,
    prompts_path: str | os.PathLike[str] | None = None,
    world_path: str | os.PathLike[str] | None = None,
    run_path: str | os.PathLike[str] | None = None,
    client: Any = None,
) -> pd.DataFrame:
    """win_rates.csv: every model (except the baseline) against `config.baseline`."""
    gens = {
        m: {g.prompt_id: g for g in read_records(p, Generation)}
        for m, p in zip(models, generation_paths, strict=True)
    }
    if config.baseline not in gens:
        raise ValueError(f"baseline '{config.baseline}' is not among the models {list(models)}")
    base = gens[config.baseline]
    order = list(base)
    chosen = order
    if len(order) > config.n_prompts:
        picked = set(random.Random(seed).sample(order, config.n_prompts))
        chosen = [pid for pid in order if pid in picked]
    others = [m for m in models if m != config.baseline]

    # Every (prompt, answer) pair to score, once.
    pairs: dict[tuple[str, str], None] = {}
    for m in [config.baseline, *others]:
        for pid in chosen:
            if pid in gens[m]:
                pairs[(m, pid)] = None
    keys = list(pairs)
    stats_report: dict[str, Any] = {"backend": config.backend}
    # (model, prompt id) -> (model's reward, baseline's reward), None where one failed.
    versus: dict[tuple[str, str], tuple[float, float] | None]
    values: list[float | None] = []
    if config.backend == "pairwise_judge":
        scores, stats = _pairwise_scores(gens, others, chosen, config, client)
        stats_report.update(stats.to_dict())
        # The model's score against the baseline (1 win, 0.5 tie, 0 loss) and its complement.
        versus = {k: None if v is None else (v, 1.0 - v) for k, v in scores.items()}
        keys = [k for k in scores for _ in range(2)]  # each pair judged in both orders
    elif config.backend == "reference":
        if prompts_path is None or world_path is None:
            raise ValueError("the reference win-rate backend needs the eval prompts and the world")
        prompts = {p.prompt_id: p for p in read_records(prompts_path, EvalPrompt)}
        world = World.load(world_path)
        for m, pid in keys:
            p = prompts[pid]
            s = reference_score(gens[m][pid], p, world.value_pool(p.metadata["attribute"]))
            values.append(float(sum(getattr(s, c) for c in JUDGE_CRITERIA)))
    elif config.backend == "reward_api":
        values, stats = rewards_api(
            [(gens[m][pid].prompt, gens[m][pid].response) for m, pid in keys], config, client=client
        )
        stats_report.update(stats.to_dict())
    elif config.backend == "reward_model":
        values = rewards_local(
            [(gens[m][pid].prompt, gens[m][pid].response) for m, pid in keys], config
        )
    else:
        raise ValueError(f"unknown win_rates backend '{config.backend}'")
    if config.backend != "pairwise_judge":
        reward = dict(zip(keys, values, strict=True))
        versus = {
            (m, pid): (reward[(m, pid)], reward[(config.baseline, pid)])
            if reward.get((m, pid)) is not None and reward[(config.baseline, pid)] is not None
            else None
            for m in others
            for pid in chosen
            if pid in gens[m]
        }

    rows = []
    # Every model's scored pairs, for the joint length-controlled fit.
    lc_group: list[int] = []
    lc_outcome: list[float] = []
    lc_length: list[float] = []
    lc_item: list[int] = []
    item_index = {pid: i for i, pid in enumerate(chosen)}
    for g, m in enumerate(others):
        both = [pid for pid in chosen if pid in gens[m]]
        ok = [pid for pid in both if versus.get((m, pid)) is not None]
        for pid in ok:
            mine, theirs = versus[(m, pid)]  # type: ignore[misc]
            lc_group.append(g)
            lc_outcome.append(1.0 if mine > theirs else 0.5 if mine == theirs else 0.0)
            lc_length.append(
                float(len(words(gens[m][pid].response)) - len(words(base[pid].response)))
            )
            lc_item.append(item_index[pid])
        wr = win_rate(
            [versus[(m, pid)][0] for pid in ok],  # type: ignore[index]
            [versus[(m, pid)][1] for pid in ok],  # type: ignore[index]
            seeded_rng(seed, m, config.baseline),
            config.n_bootstrap,
        )
        rows.append(
            {
                "model": m,
                "baseline": config.baseline,
                **wr.__dict__,
                "mean_len_model": _mean_len([gens[m][pid].response for pid in ok]),
                "mean_len_baseline": _mean_len([base[pid].response for pid in ok]),
                "backend": config.backend,
                "n_failed": len(both) - len(ok),
            }
        )
        if len(both) < len(chosen):
            print(f"{m}: answered {len(both)} of the {len(chosen)} win-rate prompts")
    if lc_group:
        lc, lc_low, lc_high = length_controlled_ci(
            lc_group,
            lc_outcome,
            lc_length,
            lc_item,
            len(others),
            config.n_bootstrap,
            seeded_rng(seed, "length-controlled", config.baseline),
        )
        for g, row in enumerate(rows):
            scored = g in set(lc_group)
            row["lc_win_rate"] = float(lc[g]) if scored else math.nan
            row["lc_ci_low"] = float(lc_low[g]) if scored else math.nan
            row["lc_ci_high"] = float(lc_high[g]) if scored else math.nan
    table = pd.DataFrame(rows, columns=COLUMNS)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_path, index=False)
    if run_path is not None:
        write_json(run_path, {**stats_report, "n_prompts": len(chosen), "pairs_scored": len(keys)})
    return table


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


def _parse_pairwise_completion(data: dict[str, Any]) -> str:
    choices = data.get("choices") or []
    if not choices:
        raise InvalidReply("no choices in the reply")
    if choices[0].get("finish_reason") == "length":
        raise InvalidReply("reply cut off at the token limit")
    return parse_verdict((choices[0].get("message") or {}).get("content"))


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
    client = client if client is not None else make_client(config, "win_rates.api_key_env")
    store = DiskCache(config.cache_dir)
    stats = CallStats()
    unique = {cache_key("pairwise", model, template_id, *t): t for t in triples}

    def work(key: str) -> str:
        message = render_pairwise(template, *unique[key])

        def request() -> Any:
            return client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": message}],
                temperature=config.temperature,
                max_tokens=config.max_tokens,
            )

        return ask(request, _parse_pairwise_completion, store, key, config, stats)

    results = run_items(list(unique), work, config, stats, desc=f"pairwise {model}")
    keys = [cache_key("pairwise", model, template_id, *t) for t in triples]
    return [results.get(k) for k in keys], stats


def _pairwise_scores(
    gens: dict[str, dict[str, Generation]],
    others: list[str],
    chosen: list[str],
    config: WinRateConfig,
    client: Any,
) -> tuple[dict[tuple[str, str], float | None], CallStats]:
    """(model, prompt id) -> the model's score against the baseline (None: a failed order)."""
    base = gens[config.baseline]
    pairs = [(m, pid) for m in others for pid in chosen if pid in gens[m] and pid in base]
    triples = []
    for m, pid in pairs:
        prompt, mine, theirs = base[pid].prompt, gens[m][pid].response, base[pid].response
        triples += [(prompt, mine, theirs), (prompt, theirs, mine)]
    verdicts, stats = pairwise_verdicts(triples, config, client=client)
    scores: dict[tuple[str, str], float | None] = {}
    for i, key in enumerate(pairs):
        first, second = verdicts[2 * i], verdicts[2 * i + 1]
        scores[key] = None if first is None or second is None else pairwise_outcome(first, second)
    return scores, stats


def _mean_len(texts: list[str]) -> float:
    return float(np.mean([len(words(t)) for t in texts])) if texts else math.nan
