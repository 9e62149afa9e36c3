"""HELM: local scenario data read by HELM's own classes, ECE and win rates recomputed from HELM's
per-instance stats and compared to helm-summarize, and a real helm-run on tiny random models.

HELM lives in its own environment (.venv-helm); tests that need it run its Python as a subprocess
and are skipped, with the reason, when that environment is absent.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from stylized_dpo.evals.helm import (
    HelmConfig,
    deployment_name,
    ece_equal_mass,
    run_entries,
    run_model,
    summarize,
)
from stylized_dpo.world.facts import make_world
from stylized_dpo.world.helm_data import write_helm_scenarios

ROOT = Path(__file__).resolve().parents[1]
HELM_BIN = ROOT / ".venv-helm" / "bin"
HELM_PYTHON = HELM_BIN / "python"
needs_helm = pytest.mark.skipif(
    not (HELM_BIN / "helm-run").exists(), reason=".venv-helm (crfm-helm) is not installed"
)
SCENARIOS = ("mmlu", "boolq", "natural_qa", "quac", "hellaswag")


def helm_python(code: str, *args: str) -> str:
    out = subprocess.run(
        [str(HELM_PYTHON), "-c", code, *args], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.fixture(scope="module")
def helm_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("helm_data")
    write_helm_scenarios(make_world(60, seed=3), out, n_instances=12, seed=3)
    return out


# ---- data -------------------------------------------------------------------------------------

LOAD_SCENARIOS = """
import json, sys
from collections import Counter
from helm.benchmark.scenarios.mmlu_scenario import MMLUScenario
from helm.benchmark.scenarios.boolq_scenario import BoolQScenario
from helm.benchmark.scenarios.natural_qa_scenario import NaturalQAScenario
from helm.benchmark.scenarios.quac_scenario import QuACScenario
from helm.benchmark.scenarios.commonsense_scenario import HellaSwagScenario
root = sys.argv[1]
out = {}
for name, scenario in [
    ("mmlu", MMLUScenario("high_school_geography")), ("boolq", BoolQScenario()),
    ("natural_qa", NaturalQAScenario("openbook_longans")), ("quac", QuACScenario()),
    ("hellaswag", HellaSwagScenario()),
]:
    instances = scenario.get_instances(f"{root}/scenarios/{name}")
    out[name] = {
        "splits": Counter(i.split for i in instances),
        "n_correct": [sum("correct" in r.tags for r in i.references) for i in instances],
        "n_refs": [len(i.references) for i in instances],
        "inputs": [i.input.text for i in instances if i.split != "train"],
        "answers": [[r.output.text for r in i.references if "correct" in r.tags]
                    for i in instances if i.split != "train"],
        "contrast": sum(i.contrast_inputs is not None for i in instances),
    }
print(json.dumps(out))
"""


@needs_helm
def test_scenario_files_load_through_helm_scenario_classes(helm_data):
    loaded = json.loads(helm_python(LOAD_SCENARIOS, str(helm_data)))
    card = json.loads((helm_data / "card.json").read_text())
    assert card["eval_countries_seen_in_sft"] == card["eval_countries_unseen"] == 6
    for name in SCENARIOS:
        got = loaded[name]
        n_eval = sum(v for k, v in got["splits"].items() if k != "train")
        assert n_eval == 12, (name, got["splits"])
        assert got["splits"]["train"] >= 5, (name, got["splits"])
        assert all(n >= 1 for n in got["n_correct"]), name
    assert all(n == 4 for n in loaded["mmlu"]["n_refs"] + loaded["hellaswag"]["n_refs"])
    assert all(n == 1 for n in loaded["mmlu"]["n_correct"] + loaded["hellaswag"]["n_correct"])
    # BoolQ: balanced yes/no, and every dev question has a contrast (flipped-answer) question.
    answers = [a[0] for a in loaded["boolq"]["answers"]]
    assert answers.count("Yes") == answers.count("No") == 6
    assert loaded["boolq"]["contrast"] == 12
    # Open-book NaturalQuestions: the short answer appears in the passage given to the model.
    for text, refs in zip(
        loaded["natural_qa"]["inputs"], loaded["natural_qa"]["answers"], strict=True
    ):
        assert text.startswith("Passage: ") and any(r in text for r in refs)
    # QuAC: the answer span is in the passage.
    for text, refs in zip(loaded["quac"]["inputs"], loaded["quac"]["answers"], strict=True):
        passage = text.split("Passage: ", 1)[1].split("\n\n", 1)[0]
        assert any(r in passage for r in refs if r != "CANNOTANSWER") or "CANNOTANSWER" in refs


def test_scenario_data_is_deterministic_and_rejects_a_too_small_world(tmp_path):
    world = make_world(60, seed=3)
    write_helm_scenarios(world, tmp_path / "a", n_instances=8, seed=1)
    write_helm_scenarios(world, tmp_path / "b", n_instances=8, seed=1)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.json*"))
    assert files
    for rel in files:
        if rel.suffix == ".gz":
            continue  # gzip headers carry a timestamp
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    with pytest.raises(ValueError, match="too few"):
        write_helm_scenarios(make_world(20, seed=3), tmp_path / "c", n_instances=30, seed=1)


def test_run_entries_follow_helm_core_entries():
    config = HelmConfig(max_output_tokens={"quac": 24}, max_train_instances=3)
    entries = run_entries("dpo-persuasive", config)
    m = "model=stylized-dpo/dpo-persuasive,data_augmentation=canonical,max_train_instances=3"
    assert entries == [
        f"mmlu:subject=high_school_geography,{m}",
        f"boolq:{m}",
        f"natural_qa:mode=openbook_longans,{m}",
        f"quac:{m},num_output_tokens=24",
        f"commonsense:dataset=hellaswag,method=multiple_choice_separate_original,{m}",
    ]
    with pytest.raises(ValueError, match="unknown HELM scenarios"):
        HelmConfig(scenarios=("mmlu", "gsm8k"))
    with pytest.raises(ValueError, match="unknown helm config keys"):
        HelmConfig.from_dict({"max_eval_instance": 3})


# ---- ECE ----------------------------------------------------------------------------------------


@needs_helm
def test_ece_equal_mass_matches_helm_calibration_package():
    rng = random.Random(0)
    cases = []
    for n in (1, 3, 10, 37, 200):
        probs = [rng.random() for _ in range(n)]
        if n > 10:
            probs[:5] = [0.5] * 5  # ties across a bin boundary
        correct = [int(rng.random() < p) for p in probs]
        cases.append((probs, correct))
    code = (
        "import json, sys, calibration as cal;"
        "print(json.dumps([cal.get_ece_em(p, c, num_bins=10) for p, c in json.loads(sys.argv[1])]))"
    )
    expected = json.loads(helm_python(code, json.dumps(cases)))
    for (probs, correct), want in zip(cases, expected, strict=True):
        assert ece_equal_mass(probs, correct) == pytest.approx(want, abs=1e-12)


# ---- a real helm-run and helm-summarize ---------------------------------------------------------


def _tiny_model(path: Path, seed: int, chat_eos: bool) -> None:
    import torch
    from transformers import Qwen2ForCausalLM

    from stylized_dpo.model import set_chat_eos, tiny_qwen2_config, train_tokenizer
    from stylized_dpo.world.build import corpus_rows

    world = make_world(60, seed=3)
    texts = [r["text"] for r in corpus_rows(world, 300, random.Random(0))]
    tokenizer = train_tokenizer(texts, vocab_size=600, model_max_length=512)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(tiny_qwen2_config(tokenizer, hidden_size=64, intermediate_size=128))
    if chat_eos:
        set_chat_eos(model, tokenizer)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


@pytest.fixture(scope="module")
def helm_suite(helm_data, tmp_path_factory):
    """Two tiny random models through helm-run and helm-summarize (about 40 s)."""
    root = tmp_path_factory.mktemp("helm_suite")
    models = {"base": root / "models" / "base", "sft": root / "models" / "sft"}
    _tiny_model(models["base"], seed=1, chat_eos=False)
    _tiny_model(models["sft"], seed=2, chat_eos=True)
    config = HelmConfig(
        executable_dir=str(HELM_BIN),
        max_eval_instances=6,
        max_output_tokens={"natural_qa": 8, "quac": 8},
        plain_prompt_models=("base", "sft"),  # both generate, so HELM reports every ECE
    )
    runs = {}
    for name, path in models.items():
        runs[name] = root / "runs" / name
        record = run_model(name, path, helm_data, runs[name], config)
        assert len(record["runs"]) == 5
    summary = root / "summary.csv"
    summarize(runs, models, root / "summarize", summary, config)
    with open(summary, newline="") as f:
        rows = list(csv.DictReader(f))
    suite = root / "summarize" / "benchmark_output" / "runs" / "stylized-dpo"
    return rows, suite


def _per_instance(suite: Path, model: str, prefix: str) -> list[dict]:
    tag = "model=" + deployment_name(model).replace("/", "_")
    (run,) = [p for p in suite.iterdir() if p.name.startswith(prefix) and tag in p.name]
    return json.loads((run / "per_instance_stats.json").read_text())


PREFIX = {
    "mmlu": "mmlu:",
    "boolq": "boolq:",
    "natural_qa": "natural_qa:",
    "quac": "quac:",
    "hellaswag": "commonsense:",
}
MAIN = {
    "mmlu": ("exact_match", "test"),
    "boolq": ("exact_match", "valid"),
    "natural_qa": ("f1_score", "valid"),
    "quac": ("f1_score", "valid"),
    "hellaswag": ("exact_match", "valid"),
}


def _scores(items: list[dict], metric: str, split: str) -> dict[str, dict[str | None, float]]:
    """instance id -> perturbation name (None: original) -> the metric's value."""
    out: dict[str, dict[str | None, float]] = defaultdict(dict)
    for item in items:
        pert = (item.get("perturbation") or {}).get("name")
        for stat in item["stats"]:
            name = stat["name"]
            if name["name"] == metric and name.get("split") == split:
                if not name.get("perturbation") and stat["count"]:
                    out[item["instance_id"]][pert] = stat["sum"] / stat["count"]
    return out


ROBUSTNESS = {"mild_mix"}
FAIRNESS = {"dialect", "gender", "person_name"}


def _family_value(items: list[dict], scenario: str, family: str) -> float:
    metric, split = MAIN[scenario]
    if family == "calibration":
        pairs = []
        for item in items:
            if item.get("perturbation"):
                continue
            stats = {
                s["name"]["name"]: s["sum"] / s["count"]
                for s in item["stats"]
                if s["name"].get("split") == split
                and not s["name"].get("perturbation")
                and s["count"]
            }
            pairs.append((stats["max_prob"], int(stats["exact_match"])))
        return ece_equal_mass([p for p, _ in pairs], [c for _, c in pairs])
    per_instance = []
    for variants in _scores(items, metric, split).values():
        original = variants[None]
        if family == "accuracy":
            per_instance.append(original)
        else:
            kinds = ROBUSTNESS if family == "robustness" else FAIRNESS
            per_instance.append(min([original, *(v for k, v in variants.items() if k in kinds)]))
    return sum(per_instance) / len(per_instance)


def _win_rates(columns: list[dict[str, float]], lower_is_better: bool) -> dict[str, float]:
    """Mean over columns of (models beaten + ties / 2) / (N - 1), written from the definition."""
    per_model: dict[str, list[float]] = defaultdict(list)
    for column in columns:
        if len(column) < 2:
            continue
        for model, value in column.items():
            others = [v for m, v in column.items() if m != model]
            beaten = sum((v > value) if lower_is_better else (v < value) for v in others)
            ties = sum(v == value for v in others)
            per_model[model].append((beaten + ties / 2) / (len(column) - 1))
    return {m: sum(w) / len(w) for m, w in per_model.items()}


@needs_helm
@pytest.mark.slow
def test_summary_matches_recomputation_from_per_instance_stats(helm_suite):
    rows, suite = helm_suite
    table = {(r["model"], r["family"], r["scenario"]): r for r in rows}
    assert len(rows) == 2 * 4 * 6
    assert all(r["value"] != "" or r["note"] for r in rows)
    for family in ("accuracy", "calibration", "robustness", "fairness"):
        columns = []
        for scenario in SCENARIOS:
            column = {}
            for model in ("base", "sft"):
                items = _per_instance(suite, model, PREFIX[scenario])
                mine = _family_value(items, scenario, family)
                row = table[(model, family, scenario)]
                assert row["value"] != "", row
                assert float(row["value"]) == pytest.approx(mine, abs=1e-9), row
                column[model] = float(row["value"])
            if not (family == "calibration" and scenario == "hellaswag"):
                columns.append(column)  # HELM's calibration win rate has no HellaSwag column
        expected = _win_rates(columns, lower_is_better=family == "calibration")
        for model in ("base", "sft"):
            got = float(table[(model, family, "mean_win_rate")]["value"])
            assert got == pytest.approx(expected[model], abs=1e-9), (family, model)
    note = table[("base", "calibration", "hellaswag")]["note"]
    assert "computed here" in note


@needs_helm
@pytest.mark.slow
def test_helm_run_writes_real_logprobs_through_the_plugin(helm_suite):
    _, suite = helm_suite
    items = _per_instance(suite, "base", "boolq:")
    logprobs = [s["sum"] for i in items for s in i["stats"] if s["name"]["name"] == "logprob"]
    assert logprobs and any(lp < 0 for lp in logprobs)
    spec = next(p for p in suite.iterdir() if p.name.startswith("boolq:"))
    assert "data_augmentation=canonical" in spec.name


def test_helm_module_imports_without_the_helm_environment():
    # helm.py runs in the main environment: it must not import helm, torch or pandas.
    code = (
        "import sys; import stylized_dpo.evals.helm;"
        "bad = [m for m in ('helm', 'torch', 'pandas') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
