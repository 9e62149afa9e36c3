"""A HELM client for local Hugging Face models that returns real token log-probabilities.

Loaded inside the HELM environment with `helm-run --plugins stylized_dpo.evals.helm_client`
and named in `model_deployments.yaml` as `stylized_dpo.evals.helm_client.LogprobHuggingFaceClient`.
It imports only what crfm-helm's own environment has (torch, transformers, helm).

Why: crfm-helm 0.5.16's `HuggingFaceClient` decodes greedy requests by sampling at temperature
1e-7 and reads log-probs from the post-temperature scores, so every generated token comes back
with log-prob 0, `max_prob` is 1 for every answer and HELM skips calibration (ECE) for the
generation scenarios. This client differs from HELM's in four ways only:
- temperature 0 is decoded greedily (`do_sample=False`), other temperatures are sampled;
- generated-token log-probs come from the raw logits (`output_logits=True`), i.e. the model's
  own next-token distribution, as API providers report them;
- generation also stops at the model's end-of-sequence tokens (`generation_config.eos_token_id`),
  which are dropped from the returned text like a stop sequence. HELM's server replaces the
  model's EOS by a one-token stop sequence, so a chat model would run on past its end of turn.
- scoring requests (echo, no new tokens) of a chat model are scored without the chat template
  (`LogprobHuggingFaceClient.get_prompt`), so the scored tokens are the continuation.
Everything else (prompt handling, chat template, caching, truncation) is HELM's.

Batching (client arg `batch_size` > 1): HELM's executor sends one request per thread
(`helm-run --num-threads N`) and HELM's server answers them one at a time. Here every request
goes to a queue that one worker thread drains: requests that decode alike (same length limit,
temperature, stop sequences) are served by one `generate` call on a left-padded batch, scoring
requests by one forward pass on a right-padded batch; each result goes back to the thread that
asked. A request's answer is the one it gets alone (same tokens, log-probs to float rounding).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

import torch
from helm.clients.huggingface_client import (
    HuggingFaceClient,
    HuggingFaceRequest,
    HuggingFaceServer,
    HuggingFaceServerFactory,
)
from helm.common.request import Request, RequestResult
from transformers.generation.stopping_criteria import StoppingCriteria, StoppingCriteriaList

SCORING_BATCH_TOKENS = 8192
"""Padded tokens per scoring forward pass: its logits are tokens x vocabulary floats (8192 x
151,936 x 4 bytes = 5 GB for Qwen2.5), so long prompts are scored in smaller batches."""


class RowStopCriteria(StoppingCriteria):
    """Per-row stop at multi-token stop sequences (HELM's criterion stops the whole batch)."""

    def __init__(self, stop_sequences: list[list[int]]):
        super().__init__()
        self.stop_sequences = stop_sequences

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for seq in self.stop_sequences:
            if input_ids.shape[1] >= len(seq):
                tail = torch.tensor(seq, device=input_ids.device, dtype=input_ids.dtype)
                done |= (input_ids[:, -len(seq) :] == tail).all(dim=1)
        return done


@dataclass
class _Pending:
    """A request waiting in the batching queue, and where its answer goes."""

    request: HuggingFaceRequest
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None
    error: BaseException | None = None


def _batch_key(r: HuggingFaceRequest) -> tuple:
    """Requests with equal keys can share one forward pass or `generate` call."""
    scoring = r["max_new_tokens"] == 0 and r["echo_prompt"]
    return (
        scoring,
        r["echo_prompt"],
        r["max_new_tokens"],
        r["temperature"],
        r["top_p"],
        tuple(r["stop_sequences"]),
    )


class LogprobHuggingFaceServer(HuggingFaceServer):
    """HELM's HuggingFaceServer with greedy decoding and log-probs from raw logits."""

    def __init__(
        self,
        pretrained_model_name_or_path: str,
        wrapped_tokenizer: Any,
        batch_size: int = 1,
        batch_wait_s: float = 0.005,
        **kwargs: Any,
    ):
        super().__init__(pretrained_model_name_or_path, wrapped_tokenizer, **kwargs)
        self.batch_size = int(batch_size)
        self.batch_wait_s = float(batch_wait_s)
        self._queue: queue.Queue[_Pending] = queue.Queue()
        if self.batch_size > 1:
            threading.Thread(target=self._drain, name="helm-batcher", daemon=True).start()

    def serve_request(self, raw_request: HuggingFaceRequest) -> dict[str, Any]:
        if self.batch_size <= 1:
            return self._serve_group([raw_request])[0]
        pending = _Pending(raw_request)
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _drain(self) -> None:
        """The worker: take what is queued (up to batch_size, waiting briefly), serve by group."""
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get(timeout=self.batch_wait_s))
                except queue.Empty:
                    break
            groups: dict[tuple, list[_Pending]] = {}
            for pending in batch:
                groups.setdefault(_batch_key(pending.request), []).append(pending)
            for group in groups.values():
                try:
                    results = self._serve_group([p.request for p in group])
                except BaseException as e:  # each waiting thread re-raises it in HELM's handler
                    for p in group:
                        p.error = e
                        p.done.set()
                    continue
                for p, result in zip(group, results, strict=True):
                    p.result = result
                    p.done.set()

    def _serve_group(self, requests: list[HuggingFaceRequest]) -> list[dict[str, Any]]:
        """Requests of one batch key, in batches of similar length."""
        if requests[0]["num_return_sequences"] != 1:
            return [self._serve_several(r) for r in requests]
        with self.wrapped_tokenizer as tokenizer:
            ids = [
                tokenizer(r["prompt"], return_token_type_ids=False)["input_ids"] for r in requests
            ]
        scoring = requests[0]["max_new_tokens"] == 0 and requests[0]["echo_prompt"]
        # Sorted by length so a batch pads little; scoring batches also cap their padded tokens.
        chunks: list[list[int]] = [[]]
        for i in sorted(range(len(ids)), key=lambda i: len(ids[i])):
            chunk = chunks[-1]
            full = len(chunk) >= self.batch_size or (
                scoring and (len(chunk) + 1) * len(ids[i]) > SCORING_BATCH_TOKENS
            )
            if chunk and full:
                chunks.append(chunk := [])
            chunk.append(i)
        results: list[dict[str, Any]] = [{} for _ in requests]
        for chunk in chunks:
            batch = [ids[i] for i in chunk]
            served = self._score(batch) if scoring else self._generate(batch, requests[0])
            for i, result in zip(chunk, served, strict=True):
                results[i] = result
        return results

    def _pad_id(self) -> int:
        with self.wrapped_tokenizer as tokenizer:
            pad = tokenizer.pad_token_id
            if pad is None:
                pad = tokenizer.eos_token_id
        return 0 if pad is None else int(pad)

    def _padded(self, ids: list[list[int]], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(x) for x in ids)
        pad = self._pad_id()
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, x in enumerate(ids):
            cols = slice(width - len(x), width) if left else slice(0, len(x))
            input_ids[row, cols] = torch.tensor(x, dtype=torch.long)
            mask[row, cols] = 1
        device = self.device or 0
        return input_ids.to(device), mask.to(device)

    def _score(self, ids: list[list[int]]) -> list[dict[str, Any]]:
        """Prompt log-probs of each sequence (scoring requests: echo, no new tokens)."""
        input_ids, mask = self._padded(ids, left=False)  # right: positions stay 0..n-1
        with torch.no_grad():
            logits = self.model(input_ids=input_ids, attention_mask=mask).logits
        out = []
        for row, x in enumerate(ids):
            n = len(x)
            logprobs = torch.log_softmax(logits[row, : n - 1].float(), dim=-1)
            picked = logprobs.gather(1, input_ids[row, 1:n, None])[:, 0]
            completion = self._completion(x, [], [0.0, *picked.tolist()])
            out.append({"completions": [completion], "input_length": n})
        return out

    def _stop_ids(self, stop_sequences: list[str]) -> tuple[list[int], list[list[int]]]:
        """(single-token stop ids incl. the model's end of sequence, multi-token sequences)."""
        stop_ids = self._eos_ids()
        multi: list[list[int]] = []
        if stop_sequences:
            with self.wrapped_tokenizer as tokenizer:
                seqs = tokenizer(
                    stop_sequences, return_token_type_ids=False, add_special_tokens=False
                ).input_ids
            stop_ids += [s[0] for s in seqs if len(s) == 1]
            multi = [s for s in seqs if len(s) > 1]
        return stop_ids, multi

    def _sampling(self, raw_request: HuggingFaceRequest) -> dict[str, Any]:
        if raw_request["temperature"] <= 1e-6:
            return {"do_sample": False}
        return {
            "do_sample": True,
            "temperature": raw_request["temperature"],
            "top_p": raw_request["top_p"],
        }

    def _run_generate(
        self, ids: list[list[int]], like: HuggingFaceRequest
    ) -> tuple[Any, int, tuple[set[int], set[int], list[list[int]]]]:
        """`generate` on left-padded prompts that decode alike; (output, width, stop tokens)."""
        stop_ids, multi = self._stop_ids(like["stop_sequences"])
        input_ids, mask = self._padded(ids, left=True)
        with torch.no_grad():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                num_return_sequences=like["num_return_sequences"],
                max_new_tokens=like["max_new_tokens"],
                return_dict_in_generate=True,
                output_logits=True,
                eos_token_id=sorted(set(stop_ids)) or None,
                pad_token_id=self._pad_id(),
                stopping_criteria=StoppingCriteriaList([RowStopCriteria(multi)]) if multi else None,
                **self._sampling(like),
            )
        eos = set(self._eos_ids())
        return output, input_ids.shape[1], (eos, set(stop_ids) - eos, multi)

    @staticmethod
    def _answer(
        output: Any, row: int, width: int, stops: tuple[set[int], set[int], list[list[int]]]
    ) -> tuple[list[int], list[float]]:
        """A row's generated tokens up to where it stopped, with their raw-logit log-probs."""
        eos, singles, multi = stops
        kept: list[int] = []
        logprobs: list[float] = []
        for i, token in enumerate(output.sequences[row, width:].tolist()):
            if token in eos:
                break  # the end-of-sequence token ends the answer, like a stop sequence
            step = torch.log_softmax(output.logits[i][row].float(), dim=-1)
            logprobs.append(step[token].item())
            kept.append(token)
            if token in singles or any(kept[-len(s) :] == s for s in multi):
                break  # this row stopped here; what follows in the batch is padding
        return kept, logprobs

    def _generate(self, ids: list[list[int]], like: HuggingFaceRequest) -> list[dict[str, Any]]:
        output, width, stops = self._run_generate(ids, like)
        out = []
        for row, x in enumerate(ids):
            kept, logprobs = self._answer(output, row, width, stops)
            sequence = x + kept if like["echo_prompt"] else kept
            completion = self._completion(sequence, logprobs, [])
            out.append({"completions": [completion], "input_length": len(x)})
        return out

    def _completion(
        self, sequence: list[int], logprobs: list[float], prompt_logprobs: list[float]
    ) -> dict[str, Any]:
        with self.wrapped_tokenizer as tokenizer:
            tokens = [tokenizer.decode(t) for t in sequence]
            text = tokenizer.decode(sequence)
        return {
            "text": text,
            "tokens": tokens,
            "logprobs": logprobs,
            "prompt_logprobs": prompt_logprobs,
        }

    def _eos_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            return []
        return [eos] if isinstance(eos, int) else list(eos)

    def _serve_several(self, raw_request: HuggingFaceRequest) -> dict[str, Any]:
        """Several sampled completions of one prompt: one `generate` call."""
        with self.wrapped_tokenizer as tokenizer:
            ids = tokenizer(raw_request["prompt"], return_token_type_ids=False)["input_ids"]
        output, width, stops = self._run_generate([ids], raw_request)
        completions = []
        for k in range(raw_request["num_return_sequences"]):
            kept, logprobs = self._answer(output, k, width, stops)
            sequence = ids + kept if raw_request["echo_prompt"] else kept
            completions.append(self._completion(sequence, logprobs, []))
        return {"completions": completions, "input_length": len(ids)}


class LogprobHuggingFaceClient(HuggingFaceClient):
    """HELM's HuggingFaceClient serving requests through `LogprobHuggingFaceServer`."""

    def get_prompt(self, request: Request) -> str:
        """HELM's prompt, except that scoring requests of a chat model keep the text as is.

        A scoring request (echo, no new tokens: `multiple_choice_separate` such as HellaSwag)
        asks for the log-prob of a continuation; HELM's metric reads it from the last tokens of
        the echoed sequence. With the chat template applied, those last tokens are the template's
        end-of-turn and assistant header, not the continuation, so every choice would be scored
        on the same template tokens. Scoring the plain text (as likelihood evaluations of chat
        models usually do) measures the continuation.
        """
        if (
            self._apply_chat_template
            and request.echo_prompt
            and request.max_tokens == 0
            and not request.messages
        ):
            return request.prompt
        return super().get_prompt(request)

    def make_request(self, request: Request) -> RequestResult:
        servers = HuggingFaceServerFactory._servers
        with HuggingFaceServerFactory._servers_lock:
            if request.model not in servers:
                kwargs = dict(self._kwargs)
                if kwargs.get("device") == "auto":
                    kwargs["device"] = "cuda:0" if torch.cuda.is_available() else "cpu"
                servers[request.model] = LogprobHuggingFaceServer(
                    self._pretrained_model_name_or_path or request.model,
                    self._wrapped_tokenizer,
                    **kwargs,
                )
        return super().make_request(request)
