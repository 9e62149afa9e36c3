"""Config sections as typed, frozen objects: one strict parser for every `*Config` class.

A config class is a frozen dataclass that also derives from `Section` and names its config key
(`section = "helm"`). `Section.from_dict` rejects unknown keys (naming the closest known one),
checks each value against the field's type hint and coerces what YAML cannot say exactly:
an int where a float is declared, a list where a tuple is, nested sections from mappings. Value
ranges and cross-field rules stay in each class's `__post_init__`.

`conform` is the type check itself; `records.Record.from_dict` uses it too, without coercion
and on the outer type only (a row is checked as stored).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self


class ConfigError(ValueError):
    """The config cannot work; the message names each offending key."""

    def __init__(self, problems: list[str]):
        super().__init__(
            problems[0]
            if len(problems) == 1
            else f"{len(problems)} config problems:\n" + "\n".join(f"- {p}" for p in problems)
        )
        self.problems = problems


class TypeMismatch(TypeError):
    """A value is not of its declared type. `where` locates it inside the value (`[1]`,
    `['key']`, `.field`); `expected` says what was wanted; `got` is the offending part."""

    def __init__(self, expected: str, got: Any, where: str = ""):
        super().__init__(f"{where}: expected {expected}, got {got!r}")
        self.expected = expected
        self.got = got
        self.where = where

    def inside(self, where: str) -> TypeMismatch:
        return TypeMismatch(self.expected, self.got, where + self.where)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def conform(value: Any, hint: Any, *, coerce: bool) -> Any:
    """`value` checked against the type `hint`, and returned.

    `coerce=True` (config): int -> float, list -> tuple, mappings -> nested `Section`s, and the
    items of tuples, lists and dicts are checked too. `coerce=False` (records): the value must
    already be of the outer type, which is all that is checked.
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        mismatch = None
        for option in (a for a in options if a is not type(None)):
            try:
                return conform(value, option, coerce=coerce)
            except TypeMismatch as e:
                mismatch = mismatch or e
        assert mismatch is not None
        raise mismatch
    if hint is Any:
        return value
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise TypeMismatch(f"one of {allowed}", value)
        return value
    expected = origin or hint
    if expected is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeMismatch("float", value)
        return float(value) if coerce else value
    if expected is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeMismatch("int", value)
        return value
    if isinstance(expected, type) and issubclass(expected, Section):
        if isinstance(value, expected):
            return value
        if not coerce or not isinstance(value, dict):
            raise TypeMismatch(f"a mapping of {expected.__name__} keys", value)
        return expected.from_dict(value)
    if not coerce:
        if not isinstance(value, expected):
            raise TypeMismatch(_type_name(expected), value)
        return value
    if expected is tuple:
        if not isinstance(value, list | tuple):
            raise TypeMismatch("tuple", value)
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif args and len(args) != len(value):
            raise TypeMismatch(f"{len(args)} items", value)
        if not args:
            return tuple(value)
        return tuple(
            _item(v, a, f"[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if expected is list:
        if not isinstance(value, list):
            raise TypeMismatch("list", value)
        (item,) = typing.get_args(hint) or (Any,)
        return [_item(v, item, f"[{i}]") for i, v in enumerate(value)]
    if expected is dict:
        if not isinstance(value, dict):
            raise TypeMismatch("dict", value)
        key, item = typing.get_args(hint) or (Any, Any)
        return {_item(k, key, f"[{k!r}]"): _item(v, item, f"[{k!r}]") for k, v in value.items()}
    if not isinstance(value, expected):
        raise TypeMismatch(_type_name(expected), value)
    return value


def _item(value: Any, hint: Any, where: str) -> Any:
    try:
        return conform(value, hint, coerce=True)
    except TypeMismatch as e:
        raise e.inside(where) from None


_NULL_IS_DEFAULT = "stylized_dpo.config.null_is_default"


def null_is_default(default_factory: Callable[[], Any]) -> Any:
    """A dataclass field whose config value `null` means its default (`max_output_tokens: null`:
    no caps), where `null` is otherwise no value of the field's type."""
    return dataclasses.field(default_factory=default_factory, metadata={_NULL_IS_DEFAULT: True})


class Section:
    """Mixin of a frozen config dataclass: strict construction from a config mapping.

    `section` is the config key the class reads (dotted for nested sections); errors name it.
    `label` is how the unknown-key error names the section (`<section> config` by default).
    """

    section: ClassVar[str] = ""
    label: ClassVar[str] = ""

    @classmethod
    def from_dict(cls, data: Any, section: str | None = None) -> Self:
        """The section `data` (a config mapping) as an instance; `section` overrides the class's
        key when one class serves several (`data.sft`, `data.prefs`)."""
        key = section or cls.section or cls.__name__
        if not isinstance(data, dict):
            raise ConfigError([f"config key `{key}`: expected a mapping, got {data!r}"])
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - fields)
        if unknown:
            close = [difflib.get_close_matches(str(k), sorted(fields), n=1) for k in unknown]
            guesses = [f"{k!r} -> {c[0]!r}" for k, c in zip(unknown, close, strict=True) if c]
            hint = f" (did you mean {', '.join(guesses)}?)" if guesses else ""
            label = cls.label or f"{key} config"
            raise ConfigError([f"unknown {label} keys {unknown}{hint}; known: {sorted(fields)}"])
        missing = [
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.name not in data
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError([f"config key `{key}.{name}` is missing" for name in missing])
        hints = typing.get_type_hints(cls)
        null_is_default = {
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.metadata.get(_NULL_IS_DEFAULT)
        }
        kwargs = {}
        for name, value in data.items():
            if value is None and name in null_is_default:
                continue
            hint = hints[name]
            try:
                if isinstance(hint, type) and issubclass(hint, Section) and isinstance(value, dict):
                    kwargs[name] = hint.from_dict(value, f"{key}.{name}")
                else:
                    kwargs[name] = conform(value, hint, coerce=True)
            except TypeMismatch as e:
                raise ConfigError(
                    [f"{key}.{name}{e.where}: expected {e.expected}, got {e.got!r}"]
                ) from None
        return cls(**kwargs)

    @classmethod
    def in_config(cls, config: Mapping[str, Any]) -> Self:
        """The class's section of the whole config (`section` is its dotted key); a section the
        config leaves out takes every default."""
        value: Any = config
        for part in cls.section.split("."):
            value = value.get(part, {})
        return cls.from_dict(value)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]
