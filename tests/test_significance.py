"""The significance table and the paper's claims: which comparisons, which test, Holm across the
table, and a claim's status, on data whose answer is known."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helm_suite_fixture import write_suite

from stylized_dpo.evals.claims import Claim, claim_status, load_claims
from stylized_dpo.evals.helm_cells import read_suite
from stylized_dpo.evals.significance import SignificanceConfig, comparisons, significance_table
from stylized_dpo.evals.stats import holm, mcnemar_exact
from stylized_dpo.io import DataError, write_jsonl
from stylized_dpo.records import JudgeScore

REPO = Path(__file__).resolve().parents[1]
MODELS = ["base", "sft", "dpo-x"]
CONFIG = SignificanceConfig(n_bootstrap=500, n_permutations=4000)


def test_comparisons() -> None:
    assert comparisons(["base", "sft", "dpo-a", "dpo-b"]) == [
        ("sft", "base"),
        ("dpo-a", "sft"),
        ("dpo-b", "sft"),
        ("dpo-a", "base"),
        ("dpo-b", "base"),
    ]


def _judge_files(tmp_path: Path) -> list[Path]:
    """30 prompts. sft: helpfulness 5 where base has 2 (a clear gain), the rest equal;
    dpo-x: the same as sft except relevance, 1 point lower on 8 prompts."""
    rng = np.random.default_rng(0)
    base_rel = rng.integers(2, 5, 30)
    scores = {
        "base": [
            dict(helpfulness=2, relevance=int(r), factuality=3, harmlessness=5) for r in base_rel
        ],
        "sft": [
            dict(helpfulness=5, relevance=int(r), factuality=3, harmlessness=5) for r in base_rel
        ],
    }
    scores["dpo-x"] = [
        {**s, "relevance": s["relevance"] - (1 if i < 8 else 0)}
        for i, s in enumerate(scores["sft"])
    ]
    paths = []
    for model in MODELS:
        rows = [
            JudgeScore(f"p{i}", model, reasons={c: "r" for c in s}, **s)
            for i, s in enumerate(scores[model])
        ]
        write_jsonl(tmp_path / f"{model}.jsonl", rows)
        paths.append(tmp_path / f"{model}.jsonl")
    return paths


def _suite(tmp_path: Path):
    # boolq (0/1): sft right on 12 more instances than base, dpo-x equal to sft.
    # quac (F1): every model the same.
    base = [1] * 4 + [0] * 16
    sft = [1] * 16 + [0] * 4
    f1 = list(np.linspace(0, 1, 20))
    data = {(m, "boolq"): {"value": v} for m, v in zip(MODELS, [base, sft, sft], strict=True)}
    data.update({(m, "quac"): {"value": f1} for m in MODELS})
    suite_dir = write_suite(tmp_path, data)
    rows = []
    for m in MODELS:
        for family in ("accuracy", "calibration", "robustness", "fairness"):
            for s in ("mean_win_rate", "boolq", "quac"):
                rows.append(
                    {
                        "model": m,
                        "family": family,
                        "scenario": s,
                        "value": "0.5" if family == "accuracy" else "",
                        "note": "",
                    }
                )
    return read_suite(suite_dir, MODELS, ["boolq", "quac"]), rows


def test_table_tests_and_holm(tmp_path: Path) -> None:
    suite, rows = _suite(tmp_path / "helm")
    table = significance_table(MODELS, _judge_files(tmp_path), suite, rows, CONFIG, seed=0)
    key = table.set_index(["model", "reference", "source", "family", "scenario"])
    help_row = key.loc[("sft", "base", "judge", "helpfulness", "")]
    assert help_row["difference"] == 3.0 and help_row["ci_low"] == help_row["ci_high"] == 3.0
    assert help_row["p_value"] == pytest.approx(1 / 4001)  # no sign flip is as extreme
    assert key.loc[("sft", "base", "judge", "relevance", "")]["p_value"] == 1.0
    rel = key.loc[("dpo-x", "sft", "judge", "relevance", "")]
    assert rel["difference"] == pytest.approx(-8 / 30)
    # 8 equal differences of -1: only the all-same-sign flips are as extreme, p = 2 / 2^8.
    assert rel["p_value"] == pytest.approx(2 / 256, abs=0.004)
    boolq = key.loc[("sft", "base", "helm", "accuracy", "boolq")]
    assert boolq["test"].startswith("McNemar")
    assert boolq["p_value"] == mcnemar_exact([1] * 16 + [0] * 4, [1] * 4 + [0] * 16)[2]
    assert boolq["difference"] == pytest.approx(0.6)
    quac = key.loc[("sft", "base", "helm", "accuracy", "quac")]
    assert quac["test"].startswith("paired bootstrap") and quac["p_value"] == 1.0
    # Mean win rate over boolq and quac (the accuracy columns with a HELM value): sft and dpo-x
    # tie on both and beat base on boolq; swapping two identical models changes nothing.
    mwr = key.loc[("dpo-x", "sft", "helm", "accuracy", "mean_win_rate")]
    assert (mwr["difference"], mwr["p_value"]) == (0.0, 1.0)
    mwr = key.loc[("sft", "base", "helm", "accuracy", "mean_win_rate")]
    # boolq: base 0.2 loses to both (0), sft 0.8 beats base and ties dpo-x (1.5 / 2); quac:
    # three-way tie (0.5 each). Mean over the two columns: sft 0.625, base 0.25.
    assert (mwr["value_model"], mwr["value_reference"]) == pytest.approx((0.625, 0.25))
    assert mwr["difference"] == pytest.approx(((0.75 + 0.5) / 2) - ((0.0 + 0.5) / 2))
    # Holm across every row of the table.
    assert table["p_holm"].tolist() == pytest.approx(holm(table["p_value"].tolist()))
    assert (table["significant"] == (table["p_holm"] < 0.05)).all()
    assert key.loc[("sft", "base", "judge", "helpfulness", "")]["better"] == "model"


def _claim(**kw) -> Claim:
    base = dict(
        id="c",
        model="sft",
        reference="base",
        measure="judge:helpfulness",
        direction="higher",
        quote="q",
    )
    return Claim(**{**base, **kw})


def test_claim_status(tmp_path: Path) -> None:
    suite, rows = _suite(tmp_path / "helm")
    table = significance_table(MODELS, _judge_files(tmp_path), suite, rows, CONFIG, seed=0)
    claims = [
        _claim(id="up"),
        _claim(id="down", direction="lower"),
        _claim(id="flat", measure="judge:relevance"),
        # The table holds sft vs base: asked the other way round, the sign flips.
        _claim(id="reversed", model="base", reference="sft", direction="lower"),
        _claim(id="absent", measure="helm:calibration:boolq"),
    ]
    status = claim_status(table, claims, 0.05).set_index("id")
    assert status.loc["up", "status"] == "supported"
    assert status.loc["down", "status"] == "contradicted"
    assert status.loc["flat", "status"] == "inconclusive"
    assert status.loc["reversed", "status"] == "supported"
    assert status.loc["reversed", "difference"] == -3.0
    assert status.loc["absent", "status"] == "not measured"


def test_paper_claims_file_loads_and_bad_claims_are_named(tmp_path: Path) -> None:
    claims = load_claims(REPO / "config" / "paper_claims.yaml")
    assert len(claims) >= 15 and all(c.quote for c in claims)
    bad = tmp_path / "claims.yaml"
    bad.write_text(
        "claims:\n  - {id: a, model: sft, reference: base, measure: 'judge:tone', "
        "direction: higher, quote: q}\n"
    )
    with pytest.raises(DataError, match=r"claims\[0\].*judge:tone"):
        load_claims(bad)
    bad.write_text("claims:\n  - {id: a, model: sft}\n")
    with pytest.raises(DataError, match="expected exactly the keys"):
        load_claims(bad)


def test_report_outputs(tmp_path: Path) -> None:
    from stylized_dpo.report.statistics import figure_claims, write_claims, write_significance

    suite, rows = _suite(tmp_path / "helm")
    table = significance_table(MODELS, _judge_files(tmp_path), suite, rows, CONFIG, seed=0)
    out = tmp_path / "out"
    out.mkdir()
    write_significance(
        table, out / "s.csv", out / "s.md", out / "s.tex", base_name="Qwen", label="L"
    )
    back = pd.read_csv(out / "s.csv")
    assert len(back) == len(table) and "p_holm" in back.columns
    md = (out / "s.md").read_text()
    assert "SFT vs Qwen" in md and "Holm p" in md
    assert r"\begin{longtable}" in (out / "s.tex").read_text()
    status = claim_status(
        table, [_claim(id="up"), _claim(id="flat", measure="judge:relevance")], 0.05
    )
    write_claims(status, out / "c.csv", out / "c.md", base_name="Qwen", label="L")
    figure_claims(status, out / "c.pdf", out / "c.png", base_name="Qwen", alpha=0.05, label="L")
    assert (out / "c.png").stat().st_size > 0 and "supported" in (out / "c.md").read_text()


def test_win_rate_permutation_p_matches_exact_enumeration(tmp_path: Path) -> None:
    import itertools

    from stylized_dpo.evals.helm_cells import mean_win_rates

    # One column (boolq, 8 instances), three models: the exact null of MWR(sft) - MWR(base)
    # over all 2^8 swaps of the two models' outcomes, the third model's cell as measured.
    base = np.array([1, 0, 0, 0, 1, 0, 0, 0], float)
    sft = np.array([1, 1, 1, 0, 1, 1, 0, 1], float)
    third = np.array([1, 1, 0, 0, 1, 0, 0, 0], float)
    data = {
        (m, "boolq"): {"value": list(v)} for m, v in zip(MODELS, [base, sft, third], strict=True)
    }
    suite = read_suite(write_suite(tmp_path, data), MODELS, ["boolq"])
    rows = [
        {"model": m, "family": "accuracy", "scenario": "boolq", "value": "0.5", "note": ""}
        for m in MODELS
    ]
    config = SignificanceConfig(n_bootstrap=200, n_permutations=40000)
    table = significance_table(MODELS, _judge_files(tmp_path / "j"), suite, rows, config, seed=1)
    row = table[
        (table["model"] == "sft")
        & (table["reference"] == "base")
        & (table["scenario"] == "mean_win_rate")
    ].iloc[0]

    def diff(a, b):
        rates = mean_win_rates(np.array([[a.mean()], [b.mean()], [third.mean()]]), False)
        return rates[1] - rates[0]

    observed = diff(base, sft)
    null = []
    for swap in itertools.product((False, True), repeat=8):
        s = np.array(swap)
        null.append(diff(np.where(s, sft, base), np.where(s, base, sft)))
    exact = float(np.mean(np.abs(null) >= abs(observed) - 1e-12))
    assert row["difference"] == pytest.approx(observed)
    assert 0.02 < exact < 0.9  # neither trivial extreme
    assert row["p_value"] == pytest.approx(exact, abs=0.01)
