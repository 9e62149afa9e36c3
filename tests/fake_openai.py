"""A local OpenAI-compatible chat-completions server for tests (127.0.0.1 only, scripted faults).

Each request's key is the original answer found in its user message (after "Original answer:").
`plan[key]` lists what successive attempts for that key get, then a success:
  "429", "500", "503", "400": that HTTP status with an OpenAI-style error body;
  "timeout": the reply is delayed by `slow_s` (longer than the client's timeout);
  "malformed": status 200 with a body that is not JSON;
  "no_choices": status 200, valid JSON without `choices`;
  "length", "empty", "refusal", "copy": a 200 answer that the quality filters must drop.
A success answers "STYLED: <answer>!" with finish_reason "stop".
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any

from stylized_dpo.rehearsal.servers import LocalServer


class FakeOpenAI(LocalServer):
    def __init__(
        self,
        plan: dict[str, list[str]] | None = None,
        api_key: str = "test-key",
        slow_s: float = 1.0,
        latency_s: float = 0.0,
    ):
        super().__init__()
        self.plan = {k: list(v) for k, v in (plan or {}).items()}
        self.api_key = api_key
        self.slow_s = slow_s
        self.latency_s = latency_s
        self.attempts: Counter[str] = Counter()
        self.successes: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._respond(h)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _respond(self, h: BaseHTTPRequestHandler) -> None:
        body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
        if h.headers.get("Authorization") != f"Bearer {self.api_key}":
            self.send(h, 401, b'{"error": {"message": "bad key", "type": "auth"}}')
            return
        user = body["messages"][-1]["content"]
        key = user.split("Original answer:\n", 1)[-1].strip()
        with self._lock:
            self.attempts[key] += 1
            self.bodies.append(body)
            queue = self.plan.get(key, [])
            fault = queue.pop(0) if queue else None
        if self.latency_s:
            time.sleep(self.latency_s)
        if fault in ("429", "500", "503", "400"):
            err = json.dumps({"error": {"message": f"injected {fault}", "type": "test"}})
            self.send(h, int(fault), err.encode())
            return
        if fault == "timeout":
            self._stop.wait(self.slow_s)
            self.send(h, 500, b"{}")
            return
        if fault == "malformed":
            self.send(h, 200, b'{"id": "x", "choices": [ this is not json')
            return
        if fault == "no_choices":
            self.send(h, 200, json.dumps({"id": "x", "object": "chat.completion"}).encode())
            return
        text, finish = f"STYLED: {key}!", "stop"
        if fault == "length":
            finish = "length"
        elif fault == "empty":
            text = ""
        elif fault == "refusal":
            text = "I'm sorry, but I can't help with that."
        elif fault == "copy":
            text = key
        with self._lock:
            self.successes[key] += 1
        reply = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish,
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        self.send(h, 200, json.dumps(reply).encode())
