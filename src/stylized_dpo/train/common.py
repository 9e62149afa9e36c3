"""Strict construction of the training configs from config sections (as nanoGPT's
configurator): unknown keys and values of the wrong type are errors."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Self

# ----------------------------------------------------------------------------------------------
# Config dataclasses: plain defaults, strict construction from dicts (as nanoGPT's configurator).


class ConfigMixin:
    """`from_dict` rejects unknown keys and values of the wrong type; lists become tuples."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {unknown}; known: {sorted(fields)}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for name, value in data.items():
            kwargs[name] = _coerce(f"{cls.__name__}.{name}", value, hints[name])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


def _coerce(name: str, value: Any, hint: Any) -> Any:
    options = typing.get_args(hint) if typing.get_origin(hint) is typing.Union else ()
    if not options and hasattr(hint, "__args__") and type(None) in getattr(hint, "__args__", ()):
        options = hint.__args__  # PEP 604 unions (X | None)
    if options:
        if value is None and type(None) in options:
            return None
        hint = next(a for a in options if a is not type(None))
    origin = typing.get_origin(hint) or hint
    if origin is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if origin is tuple and isinstance(value, list | tuple):
        return tuple(value)
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ValueError(f"{name}: {value!r} is not one of {typing.get_args(hint)}")
        return value
    if origin is int and isinstance(value, bool):
        raise ValueError(f"{name}: expected int, got bool")
    if not isinstance(value, origin):
        raise ValueError(f"{name}: expected {getattr(origin, '__name__', origin)}, got {value!r}")
    return value
