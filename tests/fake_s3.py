"""A read-only S3-compatible bucket on 127.0.0.1, for dry runs of profiles/runpod offline.

It answers the calls a dry run makes: HeadBucket (200), HeadObject (200 for the objects given,
else 404) and ListObjectsV2 (the objects under a prefix). Anything else is refused with 501, so
a test notices an unexpected call.
"""

from __future__ import annotations

import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LISTING = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    "<Name>{bucket}</Name><Prefix>{prefix}</Prefix><KeyCount>{n}</KeyCount>"
    "<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>{contents}</ListBucketResult>"
)
ENTRY = (
    "<Contents><Key>{key}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
    "<Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
)
MTIME = formatdate(1767225600, usegmt=True)  # 2026-01-01


class _Handler(BaseHTTPRequestHandler):
    calls: list[tuple[str, str]]
    objects: dict[str, int]  # "bucket/key" -> size

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: bytes = b"", size: int | None = None):
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body) if size is None else size))
        self.send_header("Last-Modified", MTIME)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802
        path = urlparse(self.path).path.strip("/")
        self.calls.append(("HEAD", path))
        if "/" not in path:  # the bucket
            self._reply(200)
        elif path in self.objects:
            self._reply(200, size=self.objects[path])
        else:
            self._reply(404)

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        bucket = url.path.strip("/").split("/")[0]
        query = parse_qs(url.query)
        self.calls.append(("GET", self.path))
        if "/" in url.path.strip("/"):
            self._reply(404)
        elif query.get("list-type") == ["2"] or "prefix" in query or not query:
            prefix = query.get("prefix", [""])[0]
            keys = sorted(
                k.split("/", 1)[1]
                for k in self.objects
                if k.startswith(f"{bucket}/") and k.split("/", 1)[1].startswith(prefix)
            )
            contents = "".join(
                ENTRY.format(key=k, size=self.objects[f"{bucket}/{k}"]) for k in keys
            )
            listing = LISTING.format(bucket=bucket, prefix=prefix, n=len(keys), contents=contents)
            self._reply(200, listing.encode())
        else:
            self._reply(501)


class FakeS3:
    """`with FakeS3({"bucket/key": size}) as s3:` serves those objects at `s3.url`."""

    def __init__(self, objects: dict[str, int] | None = None):
        self.objects = dict(objects or {})

    def __enter__(self) -> FakeS3:
        handler = type("Handler", (_Handler,), {"calls": [], "objects": self.objects})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.calls = handler.calls
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
