"""Local stand-ins of the paper's two APIs on 127.0.0.1, with injected faults.

- the judge (gpt-4o-mini): OpenAI's `POST /v1/chat/completions`, answering the judge prompt with
  the JSON object it asks for (four criteria 1-5 and a reason each), scored from the answer's
  length and words so that models differ;
- the reward model (nvidia/llama-3.1-nemotron-70b-reward): the same endpoint as NVIDIA serves
  it, a (user, assistant) conversation in, `reward:<score>` as the assistant's content out.

Faults are decided per request body (a hash), on its first attempt only, so every request
succeeds within the clients' retries and a run is reproducible whatever the thread order:
HTTP 429 with Retry-After, HTTP 500, a reply slower than the client's timeout, and (judge only)
a reply that is not JSON, which the judge asks again for. `counts` says what was served.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from stylized_dpo.hashing import json_digest_int

CRITERIA = ("helpfulness", "relevance", "factuality", "harmlessness")
FAULT_EVERY = {"429": 11, "500": 13, "timeout": 37, "invalid": 17}
"""A request's first attempt gets the fault when its hash modulo the value is 0 (checked in this
order); `invalid` applies to the judge only."""


def judge_reply(user: str) -> dict[str, Any]:
    """The judge's scores of the answer inside its prompt (after 'Response:')."""
    answer = user.split("Response:", 1)[-1].split("Please rate the response", 1)[0].strip()
    words = re.findall(r"\w+", answer)
    h = json_digest_int(answer)
    length_score = 1 + min(4, len(words) // 40)
    scores = {
        "helpfulness": length_score,
        "relevance": 1 + (h % 5),
        "factuality": max(1, length_score - (h >> 3) % 2),
        "harmlessness": 5 - (h >> 5) % 2,
    }
    return {
        **scores,
        "reasons": {c: f"{c} scored {scores[c]} for {len(words)} words" for c in CRITERIA},
    }


def reward_value(answer: str) -> float:
    """A Nemotron-style reward (negative, larger is better): longer, more varied answers score
    more."""
    words = re.findall(r"\w+", answer)
    variety = len(set(words)) / max(1, len(words))
    return round(
        -30.0 + min(len(words), 300) / 20 + 5 * variety + (json_digest_int(answer) % 100) / 100, 3
    )


class LocalServer:
    """An HTTP server on 127.0.0.1:`port` (0: any free port), served from a thread for the length
    of a `with` block; a subclass answers each POST in `handle`. The rehearsal's API stand-ins
    and the tests' fault-injecting servers share it."""

    def __init__(self, port: int = 0, name: str = "local") -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                server.handle(self)

        try:
            self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        except OSError as e:
            raise RuntimeError(f"cannot serve the {name} API on 127.0.0.1:{port}: {e}") from e
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    @staticmethod
    def send(
        h: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """One JSON reply; a client that gave up (a timeout test) is not an error."""
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass


class FaultyAPI(LocalServer):
    """One local endpoint (`kind`: judge or reward) on 127.0.0.1:`port` (0: any free port)."""

    def __init__(self, kind: str, port: int, api_key: str, slow_s: float):
        if kind not in ("judge", "reward"):
            raise ValueError(f"kind must be judge or reward, got {kind!r}")
        super().__init__(port, kind)
        self.kind = kind
        self.api_key = api_key
        self.slow_s = slow_s
        self.counts: Counter[str] = Counter()
        self._seen: set[int] = set()
        self._lock = threading.Lock()

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send(h, status, json.dumps(body).encode(), headers)

    def _fault(self, key: int) -> str | None:
        with self._lock:
            if key in self._seen:
                return None
            self._seen.add(key)
        for fault, every in FAULT_EVERY.items():
            if fault == "invalid" and self.kind != "judge":
                continue
            if key % every == 0:
                return fault
        return None

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        if h.path.rstrip("/") != "/v1/chat/completions":
            self._send(h, 404, {"error": {"message": f"no route {h.path}", "type": "not_found"}})
            return
        body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
        if h.headers.get("Authorization") != f"Bearer {self.api_key}":
            self._send(h, 401, {"error": {"message": "invalid API key", "type": "auth"}})
            return
        fault = self._fault(json_digest_int(body))
        with self._lock:
            self.counts["requests"] += 1
            self.counts[fault or "ok"] += 1
        if fault == "429":
            err = {
                "error": {
                    "message": "Rate limit reached",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            }
            self._send(h, 429, err, {"Retry-After": "1"})
            return
        if fault == "500":
            self._send(
                h, 500, {"error": {"message": "The server had an error", "type": "server_error"}}
            )
            return
        if fault == "timeout":
            self._stop.wait(self.slow_s)
        messages = body.get("messages") or []
        if self.kind == "judge":
            user = next((m["content"] for m in messages if m.get("role") == "user"), "")
            content = (
                "Here are my ratings: helpfulness 4, relevance 4."
                if fault == "invalid"
                else json.dumps(judge_reply(user))
            )
        else:
            answer = next((m["content"] for m in messages if m.get("role") == "assistant"), "")
            content = f"reward:{reward_value(answer)}"
        reply = {
            "id": f"chatcmpl-{json_digest_int(body):x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "logprobs": None,
                    "message": {"role": "assistant", "content": content},
                }
            ],
            "usage": {
                "prompt_tokens": sum(len(str(m.get("content", "")).split()) for m in messages),
                "completion_tokens": len(content.split()),
                "total_tokens": 0,
            },
        }
        self._send(h, 200, reply)
