"""rules/report.smk: every table and figure builds on its own from just the files it needs, and
the Snakemake report renders the captions.

The rules run in a small Snakefile that includes rules/report.smk beside the names
rules/common.smk defines, over fixture result files, so no training or evaluation stage runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from report_fixtures import make_results, make_style_results, make_sycophancy_summary

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

SNAKEFILE = f"""
configfile: "{REPO}/config/config.yaml"

STYLES = list(config["styles"])
PAPER_DPO_MODELS = [f"dpo-{{d}}" for d in ["ultrafeedback"] + STYLES]


include: "{REPO}/rules/seeds.smk"
include: "{REPO}/rules/report.smk"


rule all:
    input:
        REPORT_TARGETS,
    default_target: True
"""


def run(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--snakefile", str(workdir / "Snakefile"), "--cores", "1", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def report_targets(workdir: Path, *, sycophancy: bool = False) -> list[str]:
    """rules/report.smk's targets for `rule all` (with the sycophancy figure where the probe
    runs), printed by a Snakefile that includes it."""
    targets = "REPORT_TARGETS + SYCOPHANCY_FIGURE" if sycophancy else "REPORT_TARGETS"
    snakefile = SNAKEFILE.split("rule all:")[0] + f"print('TARGETS', json.dumps({targets}))\n"
    (workdir / "targets").mkdir(exist_ok=True)
    (workdir / "targets" / "Snakefile").write_text("import json\n" + snakefile)
    proc = run(workdir / "targets", "--list-rules")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("TARGETS "))
    return json.loads(line.removeprefix("TARGETS "))


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "paper_results.yaml", tmp_path / "config")
    make_results(tmp_path / "results")
    return tmp_path


def test_table4_needs_only_the_helm_summary(workdir):
    # Only the HELM summary exists: the table must build, and nothing else.
    shutil.rmtree(workdir / "results" / "train")
    shutil.rmtree(workdir / "results" / "judge")
    run(workdir, "results/figures/table4.pdf")
    built = sorted(p.relative_to(workdir).as_posix() for p in (workdir / "results").rglob("*.*"))
    assert built == [
        "results/figures/table4.pdf",
        "results/helm/summary.csv",
        "results/tables/table4.csv",
        "results/tables/table4.md",
        "results/tables/table4.tex",
    ]


@pytest.mark.parametrize(
    "target,keep",
    [
        ("results/figures/table3.pdf", ["train", "judge/win_rates.csv"]),
        ("results/figures/table7.pdf", ["helm"]),
        (
            "results/figures/figure2.png",
            [
                "train/dpo-ultrafeedback",
                "train/dpo-sycophantic",
                "train/dpo-authoritative",
                "train/dpo-persuasive",
            ],
        ),
        ("results/figures/figure3.png", ["judge/summary.csv"]),
        ("results/figures/figure_style.png", ["style", "data/prefs/style_measures.csv"]),
        ("results/figures/figure_win_rates.png", ["judge/win_rates.csv"]),
        ("results/figures/figure_helm.png", ["helm"]),
        ("results/figures/figure_sycophancy.png", ["sycophancy"]),
    ],
)
def test_each_artefact_builds_from_its_inputs_alone(workdir, target, keep):
    results = workdir / "results"
    make_style_results(results)
    make_sycophancy_summary(results / "sycophancy" / "summary.csv")
    saved = workdir / "saved"
    shutil.move(results, saved)
    for part in keep:
        (results / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(saved / part, results / part)
    run(workdir, target)
    assert (workdir / target).stat().st_size > 0


def test_report_targets_list_every_artefact(workdir):
    targets = report_targets(workdir)
    assert len(targets) == len(set(targets)) == 6 * 4 + 6 * 2 + 1
    assert "results/figures/figure_helm.pdf" in targets
    assert "results/figures/figure_sycophancy.png" not in targets
    with_probe = report_targets(workdir, sycophancy=True)
    assert set(with_probe) - set(targets) == {
        "results/figures/figure_sycophancy.pdf",
        "results/figures/figure_sycophancy.png",
    }
    assert "results/figures/table4.pdf" in targets and "results/tables/table8.tex" in targets
    assert "results/figures/figure2.png" in targets and "results/tables/reproduction.csv" in targets


@pytest.mark.slow
def test_all_targets_and_html_report(workdir):
    make_style_results(workdir / "results")
    run(workdir)
    for n in range(3, 9):
        for path in (f"results/tables/table{n}.csv", f"results/figures/table{n}.pdf"):
            assert (workdir / path).stat().st_size > 0
    frame = pd.read_csv(workdir / "results" / "tables" / "reproduction.csv")
    assert len(frame) == 183 and set(frame["comparison"]) == {"miniature"}
    run(workdir, "--report", "report.html")
    html = (workdir / "report.html").read_text()
    assert "Table 5 of the paper" in html and "Figure 3 of the paper" in html
    assert "Miniature, not a reproduction" in html
    assert "miniature" in html  # the embedded default is labelled as such


def test_seeds_summary_reads_every_seeds_tables(workdir):
    """With seeds [0, 1] the summary builds each seed's Tables 3-8 from its own results and
    lists every value per seed with their mean (the first seed at today's paths)."""
    second = make_results(workdir / "results" / "seeds" / "1", seed=1)
    make_style_results(workdir / "results", seed=1)
    style1 = make_style_results(workdir / "results" / "seeds" / "1", seed=2)
    seeds_overlay = str(REPO / ".test" / "seeds.yaml")
    run(workdir, "results/tables/seeds_summary.csv", "--configfile", seeds_overlay)
    for n in (3, 4, 8):
        assert (workdir / f"results/tables/table{n}.csv").exists()
        assert (workdir / f"results/seeds/1/tables/table{n}.csv").exists()
    summary = pd.read_csv(workdir / "results/tables/seeds_summary.csv")
    assert set(summary["source"]) == {
        "table3", "table4", "table5", "table6", "table7", "table8", "judge_summary", "win_rates",
        "style",
    }  # fmt: skip
    praise = summary[(summary.source == "style") & (summary.measure == "praise_per_100w")]
    assert praise.set_index("row").seed_1.to_dict() == pytest.approx(
        {m: v["praise_per_100w"] for m, v in style1["generations"].items()}
    )
    first = pd.read_csv(workdir / "results/judge/win_rates.csv")
    rate0 = first[(first.model == "dpo-sycophantic") & (first.baseline == "base")].win_rate.item()
    rate1 = second["win_rates"]["dpo-sycophantic"][6]
    row = summary[
        (summary.source == "win_rates")
        & (summary.row == "dpo-sycophantic / base / reference")
        & (summary.measure == "win_rate")
    ].iloc[0]
    assert (row.seed_0, row.seed_1, row.n_seeds) == (pytest.approx(rate0), pytest.approx(rate1), 2)
    assert row["mean"] == pytest.approx((rate0 + rate1) / 2)
    half = 12.706205 * abs(rate0 - rate1) / 2  # t(0.975, 1) * sd / sqrt(2), sd = |a - b| / sqrt 2
    assert row.ci_high == pytest.approx((rate0 + rate1) / 2 + half, rel=1e-5)
    assert (
        "| win_rates | dpo-sycophantic / base / reference | win_rate |"
        in (workdir / "results/tables/seeds_summary.md").read_text()
    )


def test_tables_and_figure_across_seeds_read_every_seeds_inputs(workdir):
    """With seeds [0, 1], each cell of table{n}_seeds is the mean of the two seeds' own Table n
    cells (rebuilt from each seed's inputs, in seed order), and the seed figure draws."""
    make_results(workdir / "results" / "seeds" / "1", seed=1)
    seeds_overlay = str(REPO / ".test" / "seeds.yaml")
    targets = [
        "results/tables/table3_seeds.csv",
        "results/tables/table7_seeds.md",
        "results/figures/seeds.png",
    ]
    run(workdir, *targets, "--configfile", seeds_overlay)
    companion = pd.read_csv(workdir / "results/tables/table3_seeds.csv").set_index("model")
    for model, column in [("dpo-sycophantic", "validation_loss"), ("sft", "win_rate")]:
        a, b = (
            pd.read_csv(workdir / f"results/{d}tables/table3.csv").set_index("model")[column][model]
            for d in ("", "seeds/1/")
        )
        assert a != b  # the fixture's seeds differ, so the mean tells them apart
        assert companion.at[model, f"{column}_mean"] == pytest.approx((a + b) / 2, rel=1e-5)
        half = 12.706205 * abs(a - b) / 2
        assert companion.at[model, f"{column}_ci_high"] == pytest.approx(
            (a + b) / 2 + half, rel=1e-4
        )
        assert companion.at[model, f"{column}_n_seeds"] == 2
    md = (workdir / "results/tables/table7_seeds.md").read_text()
    assert md.startswith("**Table 7: Results for Robustness, mean over 2 training seeds")
    assert "Seeds 0, 1 (training seed" in md
    assert (workdir / "results/figures/seeds.png").stat().st_size > 0
