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
    HelmError,
    check_local_data,
    deployment_name,
    expected_requests,
    local_data_files,
    mem_mb_estimate,
    run_entries,
    runtime_min_estimate,
)
from stylized_dpo.evals.helm_run import make_relocatable, run_model
from stylized_dpo.evals.helm_summary import ece_equal_mass, summarize
from stylized_dpo.records import MMLU_CORE_SUBJECTS
from stylized_dpo.world.facts import make_world
from stylized_dpo.world.helm_data import write_helm_scenarios
from stylized_dpo.world.helm_local_data import write_helm_local_data

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
    *((f"mmlu/{s}", MMLUScenario(s)) for s in json.loads(sys.argv[2])), ("boolq", BoolQScenario()),
    ("natural_qa", NaturalQAScenario("openbook_longans")), ("quac", QuACScenario()),
    ("hellaswag", HellaSwagScenario()),
]:
    instances = scenario.get_instances(f"{root}/scenarios/{name.split('/')[0]}")
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
    loaded = json.loads(helm_python(LOAD_SCENARIOS, str(helm_data), json.dumps(MMLU_CORE_SUBJECTS)))
    card = json.loads((helm_data / "card.json").read_text())
    assert card["eval_countries_seen_in_sft"] == card["eval_countries_unseen"] == 6
    assert card["mmlu_subjects"] == list(MMLU_CORE_SUBJECTS)
    mmlu = [f"mmlu/{s}" for s in MMLU_CORE_SUBJECTS]
    for name in [*mmlu, *SCENARIOS[1:]]:
        got = loaded[name]
        n_eval = sum(v for k, v in got["splits"].items() if k != "train")
        assert n_eval == 12, (name, got["splits"])
        assert got["splits"]["train"] >= 5, (name, got["splits"])
        assert all(n >= 1 for n in got["n_correct"]), name
    for name in [*mmlu, "hellaswag"]:
        assert all(n == 4 for n in loaded[name]["n_refs"]), name
        assert all(n == 1 for n in loaded[name]["n_correct"]), name
    # Each subject asks the same countries about different facts.
    assert len({tuple(loaded[name]["inputs"]) for name in mmlu}) == len(mmlu)
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
        f"mmlu:subject=abstract_algebra,{m}",
        f"mmlu:subject=college_chemistry,{m}",
        f"mmlu:subject=computer_security,{m}",
        f"mmlu:subject=econometrics,{m}",
        f"mmlu:subject=us_foreign_policy,{m}",
        f"boolq:{m}",
        f"natural_qa:mode=openbook_longans,{m}",
        f"quac:{m},num_output_tokens=24",
        f"commonsense:dataset=hellaswag,method=multiple_choice_separate_original,{m}",
    ]
    one = run_entries("sft", HelmConfig.from_dict({"mmlu_subjects": ["anatomy"]}))
    assert [e.split(",")[0] for e in one if e.startswith("mmlu")] == ["mmlu:subject=anatomy"]
    with pytest.raises(ValueError, match="mmlu_subjects"):
        HelmConfig(mmlu_subjects=("abstract algebra",))
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


# ---- helm.data: local ----------------------------------------------------------------------------

PAPER = {
    "scenarios": list(SCENARIOS),
    "mmlu_subjects": list(MMLU_CORE_SUBJECTS),
    "data_augmentation": "canonical",
    "natural_qa_mode": "openbook_longans",
}


@pytest.fixture(scope="module")
def local_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("helm_local")
    write_helm_local_data(root, n_instances=10, seed=5)
    return root


def test_local_data_has_every_file_of_the_paper_entries_in_helm_layout(local_data):
    config = HelmConfig.from_dict({**PAPER, "data": "local", "data_path": str(local_data)})
    files = local_data_files(config)
    assert "scenarios/boolq/data/boolq_perturbed.jsonl" in files
    assert "scenarios/mmlu/data/test/econometrics_test.csv" in files
    assert "perturbations/dialect/SAE_to_AAVE_mapping.json" in files
    check_local_data(local_data, config)  # nothing missing
    # MMLU files as MMLU ships them: no header, six columns, the answer letter last, right.
    with open(local_data / "scenarios/mmlu/data/test/abstract_algebra_test.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 10 and all(len(r) == 6 and r[5] in "ABCD" for r in rows)
    for row in rows:
        question, answer = row[0], row[1 + "ABCD".index(row[5])]
        if question.startswith("Find the order of the element"):
            a, n = question.split("element ")[1].split(" in the additive group Z_")
            a, n = int(a), int(n.rstrip("."))
            assert int(answer) == n // __import__("math").gcd(a, n)
    boolq = json.loads((local_data / "scenarios/boolq/data/dev").read_text().splitlines()[0])
    assert list(boolq) == ["question", "title", "answer", "passage"]


def test_local_data_check_names_each_missing_file(local_data, tmp_path):
    config = HelmConfig.from_dict({**PAPER, "data": "local", "data_path": str(tmp_path / "d")})
    import shutil

    shutil.copytree(local_data, tmp_path / "d")
    (tmp_path / "d/scenarios/mmlu/data/dev/college_chemistry_dev.csv").unlink()
    (tmp_path / "d/scenarios/natural_qa/data/nq-dev-03.jsonl.gz").unlink()
    with pytest.raises(HelmError, match="2 of HELM's files are missing") as err:
        check_local_data(tmp_path / "d", config)
    assert "scenarios/mmlu/data/dev/college_chemistry_dev.csv" in str(err.value)
    assert "scenarios/natural_qa/data/nq-dev-03.jsonl.gz" in str(err.value)
    # run_model checks before it runs anything (here: before looking for helm-run at all).
    config = HelmConfig.from_dict({**PAPER, "executable_dir": str(tmp_path / "no-helm")})
    with pytest.raises(HelmError, match="nq-dev-03"):
        run_model("sft", tmp_path / "model", tmp_path / "d", tmp_path / "run", config)
    with pytest.raises(ValueError, match="data_path"):
        HelmConfig.from_dict({"data": "local"})


@needs_helm
def test_local_data_loads_through_helm_scenario_classes(local_data):
    loaded = json.loads(
        helm_python(LOAD_SCENARIOS, str(local_data), json.dumps(MMLU_CORE_SUBJECTS))
    )
    for name in [f"mmlu/{s}" for s in MMLU_CORE_SUBJECTS] + list(SCENARIOS[1:]):
        got = loaded[name]
        if name.startswith("mmlu"):  # test, and MMLU's validation split as HELM reads it
            assert got["splits"] == {"train": 5, "valid": 5, "test": 10}, name
        else:
            assert sum(v for k, v in got["splits"].items() if k != "train") == 10, name
        assert all(n == 1 for n in got["n_correct"]) or name in ("natural_qa", "quac"), name
    assert loaded["boolq"]["contrast"] == 10
    questions = loaded["mmlu/college_chemistry"]["inputs"]
    assert all("moles" in q for q in questions)


# ---- job size -----------------------------------------------------------------------------------


def test_request_estimate_follows_the_paper_settings(tmp_path):
    paper = HelmConfig.from_dict(
        {**PAPER, "data": "download", "max_eval_instances": 1000, "num_train_trials": 3}
        | {"requests_per_s": 20}
    )
    requests = expected_requests(paper)
    # 1000 instances x 3 trials x (original + 4 perturbations) per generation scenario.
    assert requests["boolq"] == requests["natural_qa"] == requests["quac"] == 15_000
    assert requests["mmlu"] == (4 * 100 + 114) * 3 * 5  # capped by the subjects' test sets
    assert requests["hellaswag"] == 4 * 15_000  # one scoring request per ending
    minutes = runtime_min_estimate(paper)
    assert minutes == pytest.approx(1.25 * (sum(requests.values()) / 20 + 120 + 9 * 60) / 60, abs=1)
    slower = HelmConfig.from_dict({**PAPER, "max_eval_instances": 1000, "requests_per_s": 2})
    assert runtime_min_estimate(slower) > 5 * runtime_min_estimate(paper) / 3
    # Memory from the weights the job reads; a model not trained yet gets the fallback.
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"\0" * (300 * 2**20))
    world = HelmConfig()
    assert mem_mb_estimate(model, world) == 1000 + 600
    assert mem_mb_estimate(tmp_path / "absent", world) == 1000 + 2 * 2000
    assert mem_mb_estimate(model, paper) == 1000 + 600 + 4000


def test_make_relocatable_rewrites_absolute_paths(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "log.txt").write_text(f"Loading {tmp_path}/models/sft\nok\n")
    (tmp_path / "b.json").write_text('{"x": 1}')
    changed = make_relocatable(tmp_path, {str(tmp_path): "."})
    assert changed == ["a/log.txt"]
    assert (tmp_path / "a" / "log.txt").read_text() == "Loading ./models/sft\nok\n"


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
        assert len(record["runs"]) == 4 + len(MMLU_CORE_SUBJECTS)
    summary = root / "summary.csv"
    summarize(runs, models, root / "summarize", summary, config)
    with open(summary, newline="") as f:
        rows = list(csv.DictReader(f))
    suite = root / "summarize" / "benchmark_output" / "runs" / "stylized-dpo"
    return rows, suite


def _files_naming(folder: Path, needles: list[str]) -> list[str]:
    """Files under `folder` whose bytes contain any of `needles` (links count as naming)."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            found.append(f"{path} (link)")
        elif path.is_file() and any(n.encode() in path.read_bytes() for n in needles):
            found.append(str(path.relative_to(folder)))
    return found


@needs_helm
@pytest.mark.slow
def test_helm_outputs_are_relocatable(helm_suite):
    _, suite = helm_suite
    root = suite.parents[3]  # the fixture's folder: models/, runs/, summarize/
    needles = sorted({str(root), str(root.resolve()), str(ROOT), str(ROOT.resolve())})
    naming = _files_naming(root / "runs", needles) + _files_naming(root / "summarize", needles)
    assert naming == []
    # The deployments name the model folders relative to where HELM ran.
    deployments = (root / "runs" / "sft" / "config" / "model_deployments.yaml").read_text()
    assert "pretrained_model_name_or_path: ../../models/sft" in deployments
    # helm-run read its inputs through links, removed with them after the run.
    assert not (root / "runs" / "sft" / "benchmark_output" / "scenarios").exists()


@needs_helm
@pytest.mark.slow
def test_helm_run_on_local_data_in_helm_layout(local_data, tmp_path):
    """The paper's run entries (core MMLU subjects, canonical, NQ open-book) on `data: local`."""
    model = tmp_path / "models" / "sft"
    _tiny_model(model, seed=2, chat_eos=True)
    config = HelmConfig.from_dict(
        {**PAPER, "data": "local", "data_path": str(local_data), "executable_dir": str(HELM_BIN)}
        | {"max_eval_instances": 3, "max_output_tokens": {"natural_qa": 4, "quac": 4}}
        | {"num_threads": 4, "batch_size": 4}
    )
    before = {p: p.stat().st_mtime for p in local_data.rglob("*")}
    record = run_model("sft", model, local_data, tmp_path / "run", config)
    names = record["runs"]
    assert len(names) == 9 and sum(n.startswith("mmlu:subject=") for n in names) == 5
    assert any(n.startswith("natural_qa:mode=openbook_longans") for n in names)
    assert all("data_augmentation=canonical" in n for n in names)
    assert record["requests"] > 9 * 3  # perturbations multiply the requests
    # The pre-placed data is only read: no file added or changed (HELM's caches went to the run).
    assert {p: p.stat().st_mtime for p in local_data.rglob("*")} == before
    assert _files_naming(tmp_path / "run", [str(tmp_path), str(ROOT)]) == []


def _per_instance(suite: Path, model: str, prefix: str) -> list[list[dict]]:
    """Per-instance stats of each of a model's runs of one scenario (MMLU: one per subject)."""
    tag = "model=" + deployment_name(model).replace("/", "_")
    runs = sorted(p for p in suite.iterdir() if p.name.startswith(prefix) and tag in p.name)
    assert runs, (model, prefix)
    return [json.loads((run / "per_instance_stats.json").read_text()) for run in runs]


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
            # An original's stat has no perturbation; a perturbed copy's own stat is named by
            # its perturbation, computed on the perturbed input.
            own = name.get("perturbation") or {}
            is_own = own.get("name") == pert and own.get("computed_on", "perturbed") == "perturbed"
            if name["name"] == metric and name.get("split") == split and is_own and stat["count"]:
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
                runs = _per_instance(suite, model, PREFIX[scenario])
                assert len(runs) == (len(MMLU_CORE_SUBJECTS) if scenario == "mmlu" else 1)
                # helm-summarize merges a column's runs: each run's mean weighs equally.
                values = [_family_value(items, scenario, family) for items in runs]
                mine = sum(values) / len(values)
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
    (items,) = _per_instance(suite, "base", "boolq:")
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


# ---- batched serving -----------------------------------------------------------------------------

BATCHED_VS_ALONE = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from helm.tokenizers.huggingface_tokenizer import HuggingFaceTokenizer
from stylized_dpo.evals.helm_client import LogprobHuggingFaceServer

path = sys.argv[1]
tok = HuggingFaceTokenizer.create_tokenizer(path)
alone = LogprobHuggingFaceServer(path, tok, device="cpu", batch_size=1)
batched = LogprobHuggingFaceServer(path, tok, device="cpu", batch_size=4, batch_wait_s=0.2)
words = "the capital of Avalon is Brin and its flag is green".split()
prompts = [" ".join(words[: 2 + i % 9]) + " Question:" * (i % 3) for i in range(11)]

def request(prompt, max_new_tokens=8, stop=(), echo=False):
    return {"engine": "m", "prompt": prompt, "temperature": 1e-7, "num_return_sequences": 1,
            "max_new_tokens": max_new_tokens, "top_p": 1, "echo_prompt": echo,
            "top_k_per_token": 1, "stop_sequences": list(stop)}

first = alone.serve_request(request(prompts[0]))["completions"][0]["text"]
stop = first[1:6]  # text the model does produce: a multi-token stop sequence for some rows
requests = (
    [request(p) for p in prompts]
    + [request(p, stop=["\\n", stop]) for p in prompts]
    + [request(p, max_new_tokens=0, echo=True) for p in prompts]
)
with ThreadPoolExecutor(8) as pool:
    got = list(pool.map(batched.serve_request, requests))
want = [alone.serve_request(r) for r in requests]
print(json.dumps({"want": want, "got": got, "stop": stop}))
"""


@needs_helm
def test_batched_server_answers_each_request_as_alone(tmp_path):
    model = tmp_path / "model"
    _tiny_model(model, seed=4, chat_eos=True)
    env = {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [str(HELM_PYTHON), "-c", BATCHED_VS_ALONE, str(model)],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **env},
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    lengths = set()
    for want, got in zip(result["want"], result["got"], strict=True):
        (w,), (g,) = want["completions"], got["completions"]
        assert got["input_length"] == want["input_length"]
        assert g["text"] == w["text"] and g["tokens"] == w["tokens"]
        assert g["logprobs"] == pytest.approx(w["logprobs"], abs=1e-4)
        assert g["prompt_logprobs"] == pytest.approx(w["prompt_logprobs"], abs=1e-4)
        lengths.add(len(w["tokens"]))
    assert len(lengths) > 3  # prompts and answers of different lengths shared batches
    stopped = [
        w["completions"][0]["text"] for w in result["want"][11:22] if w["completions"][0]["text"]
    ]
    assert any(result["stop"] in t for t in stopped)  # the multi-token stop did fire


def _helm_run_resources(*args: str) -> list[dict[str, str]]:
    snakemake = Path(sys.executable).with_name("snakemake")
    out = subprocess.run(
        [str(snakemake), "-n", "--configfile", "config/paper.yaml", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    blocks = out.stdout.split("rule helm_run:")[1:]
    lines = [next(x for x in b.splitlines() if x.strip().startswith("resources:")) for b in blocks]
    return [dict(kv.split("=", 1) for kv in line.split(":", 1)[1].split(", ")) for line in lines]


def test_paper_helm_jobs_declare_the_estimated_runtime_and_memory(tmp_path):
    import yaml

    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    config = HelmConfig.from_dict(paper["helm"])
    jobs = _helm_run_resources()
    assert len(jobs) == 6
    for res in jobs:
        assert int(res["runtime"]) == runtime_min_estimate(config) > 60
        # The models do not exist in a dry run: 2 GB of weights assumed, real benchmark data.
        assert int(res["mem_mb"]) == mem_mb_estimate(tmp_path / "absent", config) > 4000
        assert res["gpu"] == "1"
    override = tmp_path / "runtime.yaml"
    override.write_text("compute: {runtime_min: {helm_run: 45}}\n")
    assert {r["runtime"] for r in _helm_run_resources(str(override))} == {"45"}
