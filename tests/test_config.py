"""The one config parser (`stylized_dpo.config`): unknown keys, types, coercion, nesting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import pytest

from stylized_dpo.config import ConfigError, Section, conform, null_is_default
from stylized_dpo.data import source_config
from stylized_dpo.records import EvalPrompt, RecordError
from stylized_dpo.synth.backends import SynthConfig
from stylized_dpo.train.dpo import DPOConfig


@dataclass(frozen=True)
class Inner(Section):
    section: ClassVar[str] = "outer.inner"

    size: int = 1


@dataclass(frozen=True)
class Outer(Section):
    section: ClassVar[str] = "outer"

    rate: float = 0.5
    names: tuple[str, ...] = ()
    pair: tuple[float, float] = (0.0, 1.0)
    caps: dict[str, int] = null_is_default(dict)
    mode: Literal["a", "b"] = "a"
    limit: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_unknown_keys_name_the_section_and_the_closest_key():
    with pytest.raises(ConfigError, match=r"unknown outer config keys \['rte'\] "):
        Outer.from_dict({"rte": 1})
    with pytest.raises(ConfigError, match=r"did you mean 'rte' -> 'rate'\?"):
        Outer.from_dict({"rte": 1})
    with pytest.raises(ConfigError, match=r"unknown outer.inner config keys \['sise'\]"):
        Outer.from_dict({"inner": {"sise": 2}})


def test_values_are_coerced_where_yaml_cannot_say_the_type():
    cfg = Outer.from_dict(
        {"rate": 1, "names": ["x", "y"], "pair": [0, 2], "limit": 3, "inner": {"size": 4}}
    )
    assert cfg == Outer(rate=1.0, names=("x", "y"), pair=(0.0, 2.0), limit=3, inner=Inner(4))
    assert isinstance(cfg.rate, float) and all(isinstance(b, float) for b in cfg.pair)
    assert Outer.from_dict({"caps": None}).caps == {}  # null: the default
    assert Outer.from_dict({"limit": None}).limit is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rate": "0.1"}, r"outer.rate: expected float, got '0.1'"),
        ({"rate": True}, r"outer.rate: expected float, got True"),
        ({"names": ["x", 1]}, r"outer.names\[1\]: expected str, got 1"),
        ({"pair": [1.0]}, r"outer.pair: expected 2 items, got \[1.0\]"),
        ({"caps": {"quac": "8"}}, r"outer.caps\['quac'\]: expected int, got '8'"),
        ({"mode": "c"}, r"outer.mode: expected one of \('a', 'b'\), got 'c'"),
        ({"limit": 2.5}, r"outer.limit: expected int, got 2.5"),
        ({"inner": {"size": "big"}}, r"outer.inner.size: expected int, got 'big'"),
        ({"inner": 3}, r"outer.inner: expected a mapping of Inner keys, got 3"),
    ],
)
def test_wrong_types_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        Outer.from_dict(data)


def test_config_classes_use_the_parser():
    assert DPOConfig.from_dict({"betas": [0.9, 1]}).betas == (0.9, 1.0)
    with pytest.raises(ConfigError, match=r"dpo.loss: expected one of \('sigmoid'"):
        DPOConfig.from_dict({"loss": "hinged"})
    cfg = SynthConfig.from_config({"backend": "rules", "openai": {"timeout_s": 5}}, seed=1)
    assert cfg.openai.timeout_s == 5.0 and cfg.seed == 1
    with pytest.raises(ConfigError, match=r"unknown synth.openai config keys \['timeout'\]"):
        SynthConfig.from_config({"backend": "rules", "openai": {"timeout": 5}}, seed=1)


def test_a_data_source_rejects_keys_it_does_not_know():
    # A misspelt key was dropped before: `max_row: 10` read every row.
    with pytest.raises(ConfigError, match=r"unknown data.sft config keys \['max_row'\]"):
        source_config({"source": "local", "path": "d/{split}.jsonl", "max_row": 10}, "sft")


def test_records_are_checked_as_stored_without_coercion():
    assert conform(1, float, coerce=False) == 1 and isinstance(conform(1, float, coerce=False), int)
    with pytest.raises(RecordError, match="field 'prompt': expected str, got int"):
        EvalPrompt.from_dict({"prompt_id": "p", "prompt": 3})
    with pytest.raises(RecordError, match="field 'metadata': expected dict, got list"):
        EvalPrompt.from_dict({"prompt_id": "p", "prompt": "q", "metadata": []})
