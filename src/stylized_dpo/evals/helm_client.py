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
"""

from __future__ import annotations

from typing import Any

import torch
from helm.clients.huggingface_client import (
    HuggingFaceClient,
    HuggingFaceRequest,
    HuggingFaceServer,
    HuggingFaceServerFactory,
    StopAtSpecificTokenCriteria,
)
from helm.common.request import Request, RequestResult
from transformers.generation.stopping_criteria import StoppingCriteriaList


class LogprobHuggingFaceServer(HuggingFaceServer):
    """HELM's HuggingFaceServer with greedy decoding and log-probs from raw logits."""

    def _eos_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            return []
        return [eos] if isinstance(eos, int) else list(eos)

    def serve_request(self, raw_request: HuggingFaceRequest) -> dict[str, Any]:
        with self.wrapped_tokenizer as tokenizer:
            encoded = tokenizer(
                raw_request["prompt"], return_tensors="pt", return_token_type_ids=False
            ).to(self.device or 0)
            pad_token_id = tokenizer.pad_token_id
            if pad_token_id is None:
                pad_token_id = tokenizer.eos_token_id
        input_ids = encoded["input_ids"]
        n_prompt = input_ids.shape[1]
        n_seq = raw_request["num_return_sequences"]

        if raw_request["max_new_tokens"] == 0 and n_seq == 1 and raw_request["echo_prompt"]:
            # Scoring only (multiple_choice_separate, language modelling): prompt log-probs.
            with torch.no_grad():
                logits = self.model(input_ids).logits[0].float()
            logprobs = torch.log_softmax(logits[:-1], dim=-1)
            picked = logprobs.gather(1, input_ids[0, 1:, None])[:, 0]
            prompt_logprobs = [0.0, *picked.tolist()]
            with self.wrapped_tokenizer as tokenizer:
                tokens = [tokenizer.decode(t) for t in input_ids[0]]
                text = tokenizer.decode(input_ids[0])
            completion = {
                "text": text,
                "tokens": tokens,
                "logprobs": [],
                "prompt_logprobs": prompt_logprobs,
            }
            return {"completions": [completion], "input_length": n_prompt}

        stop_ids: list[int] = self._eos_ids()
        stopping_criteria = None
        if raw_request["stop_sequences"]:
            with self.wrapped_tokenizer as tokenizer:
                stop_seqs = tokenizer(
                    raw_request["stop_sequences"],
                    return_token_type_ids=False,
                    add_special_tokens=False,
                ).input_ids
            single = [s[0] for s in stop_seqs if len(s) == 1]
            multi = [s for s in stop_seqs if len(s) > 1]
            stop_ids += single
            if multi:
                stopping_criteria = StoppingCriteriaList(
                    [StopAtSpecificTokenCriteria(stop_sequence=s) for s in multi]
                )
        greedy = raw_request["temperature"] <= 1e-6
        sampling: dict[str, Any] = (
            {"do_sample": False}
            if greedy
            else {
                "do_sample": True,
                "temperature": raw_request["temperature"],
                "top_p": raw_request["top_p"],
            }
        )
        with torch.no_grad():
            output = self.model.generate(
                **encoded,
                num_return_sequences=n_seq,
                max_new_tokens=raw_request["max_new_tokens"],
                return_dict_in_generate=True,
                output_logits=True,
                eos_token_id=sorted(set(stop_ids)) or None,
                pad_token_id=pad_token_id,
                stopping_criteria=stopping_criteria,
                **sampling,
            )
        eos = set(self._eos_ids())
        completions = []
        for k in range(n_seq):
            generated = output.sequences[k, n_prompt:].tolist()
            logprobs = []
            kept = []
            for i, token in enumerate(generated):
                if token in eos:
                    break  # the end-of-sequence token ends the answer, like a stop sequence
                step = torch.log_softmax(output.logits[i][k].float(), dim=-1)
                logprobs.append(step[token].item())
                kept.append(token)
            sequence = input_ids[0].tolist() + kept if raw_request["echo_prompt"] else kept
            with self.wrapped_tokenizer as tokenizer:
                tokens = [tokenizer.decode(t) for t in sequence]
                text = tokenizer.decode(sequence)
            completions.append(
                {"text": text, "tokens": tokens, "logprobs": logprobs, "prompt_logprobs": []}
            )
        return {"completions": completions, "input_length": n_prompt}


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
