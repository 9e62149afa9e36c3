"""Helpers for the evaluation tests: a tiny random-init Qwen2 chat model and a local
OpenAI-compatible HTTP server (127.0.0.1 only) that injects faults on a script."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import torch

from stylized_dpo.model import tiny_qwen2_config, train_tokenizer
from stylized_dpo.rehearsal.servers import LocalServer

TEXTS = [
    "The capital of Aland is Borth. The flag of Brova is blue. What is the animal of Aland?",
    "Brova was founded in 1600. The main export of Aland is salt.",
] * 20


def save_tiny_chat_model(path: Path, seed: int = 0, classifier: bool = False) -> Path:
    """A random-init tiny Qwen2 (causal LM, or a one-logit sequence classifier) with a
    ChatML tokenizer, saved with `save_pretrained`."""
    from transformers import Qwen2ForCausalLM, Qwen2ForSequenceClassification

    tok = train_tokenizer(TEXTS, vocab_size=320, model_max_length=256)
    config = tiny_qwen2_config(
        tok,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
    )
    torch.manual_seed(seed)
    if classifier:
        config.num_labels = 1
        model = Qwen2ForSequenceClassification(config)
    else:
        model = Qwen2ForCausalLM(config)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


Reply = tuple[int, dict[str, Any] | str, dict[str, str]]
"""(HTTP status, JSON body or raw text, headers)."""


def completion(content: str, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "judge-test",
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "message": {"role": "assistant", "content": content},
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }


class FaultServer(LocalServer):
    """Serves POST /v1/chat/completions. Each request is routed by a marker `ITEM-<name>` found
    in its messages; `script[name]` lists one behaviour per call (the last one repeats), and
    `respond(behaviour, name, body)` turns a behaviour into a reply. Counts hits per item."""

    def __init__(
        self,
        script: dict[str, list[str]],
        respond: Callable[[str, str, dict[str, Any]], Reply],
        slow_s: float = 1.5,
    ):
        super().__init__()
        self.script = script
        self.respond = respond
        self.slow_s = slow_s
        self.hits: Counter[str] = Counter()
        self.ok_replies = 0
        self.lock = threading.Lock()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
        text = json.dumps(body["messages"])
        name = re.search(r"ITEM-(\w+)", text).group(1)  # type: ignore[union-attr]
        with self.lock:
            self.hits[name] += 1
            plan = self.script[name]
            behaviour = plan[min(self.hits[name], len(plan)) - 1]
        if behaviour == "slow":
            time.sleep(self.slow_s)
            behaviour = "ok"
        status, payload, headers = self.respond(behaviour, name, body)
        data = payload if isinstance(payload, str) else json.dumps(payload)
        if status == 200:
            with self.lock:
                self.ok_replies += 1
        self.send(h, status, data.encode(), headers)
