"""File helpers: atomic writes and validated JSONL reading that names the file, line and field."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from stylized_dpo.records import Record, RecordError

R = TypeVar("R", bound=Record)


class DataError(ValueError):
    """Bad input data. The message names the file, the line (1-based) and the field."""

    def __init__(
        self, path: str | os.PathLike[str], line: int | None, field: str | None, message: str
    ):
        where = f"{path}"
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line
        self.field = field
        self.reason = message


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600 files; results are meant to be read by others too.
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Record | dict[str, Any]]) -> int:
    """Write rows atomically as JSON lines; returns the number written."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            data = row.to_dict() if isinstance(row, Record) else row
            f.write(json.dumps(data, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def decode_line(raw: bytes, lineno: int) -> str:
    """One line of a UTF-8 text file; the first may start with a byte-order mark (editors on
    Windows write one), which is not part of the text."""
    return raw.decode("utf-8-sig" if lineno == 1 else "utf-8")


def iter_json_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed object) for each non-blank line; raise DataError on bad lines."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                text = decode_line(raw, lineno)
            except UnicodeDecodeError as e:
                raise DataError(
                    path, lineno, None, f"not valid UTF-8 ({e.reason} at byte {e.start})"
                ) from e
            if not text.strip():
                continue
            try:
                yield lineno, json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(
                    path, lineno, None, f"malformed JSON: {e.msg} (column {e.colno})"
                ) from e


def read_records(path: str | os.PathLike[str], cls: type[R]) -> list[R]:
    """Read a JSONL file of `cls` records; the first bad row fails with file, line and field."""
    rows = []
    for lineno, obj in iter_json_lines(path):
        try:
            rows.append(cls.from_dict(obj))
        except RecordError as e:
            raise DataError(path, lineno, e.field, str(e).split(": ", 1)[1]) from e
    return rows
