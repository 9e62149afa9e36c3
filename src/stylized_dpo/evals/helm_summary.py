"""helm-summarize over every model's runs, then `summary.csv` from HELM's "Core scenarios"
tables, with HellaSwag's ECE computed here as HELM's `ece_10_bin` (the rule `helm_summarize`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path

from stylized_dpo.evals.helm import SUITE, HelmConfig, HelmError, deployment_name, read_json
from stylized_dpo.evals.helm_run import (
    helm_env,
    list_runs,
    relocate,
    run_helm_command,
    write_local_config,
)
from stylized_dpo.io import atomic_path
from stylized_dpo.records import HELM_FAMILIES, HELM_SUMMARY_COLUMNS

ECE_METRIC = "ECE (10-bin)"
"""HELM's display name of `ece_10_bin` (the `metric` column uses HELM's display names)."""
SUMMARY_GROUP = "core_scenarios"
"""The classic schema's "Core scenarios" group: the leaderboard whose win rates the paper uses."""

# HELM run-group names (schema_classic.yaml) -> this project's scenario keys.
GROUP_TO_SCENARIO = {
    "mmlu": "mmlu",
    "boolq": "boolq",
    "natural_qa_openbook_longans": "natural_qa",
    "natural_qa_closedbook": "natural_qa",
    "quac": "quac",
    "hellaswag": "hellaswag",
}


def schema_path(config: HelmConfig) -> str:
    """HELM's classic schema file, found next to the helm-run executable's package."""
    helm_python = Path(config.executable("helm-run")).parent / "python"
    code = (
        "from importlib import resources;"
        "print(resources.files('helm.benchmark.static') / 'schema_classic.yaml')"
    )
    python = str(helm_python) if helm_python.exists() else sys.executable
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise HelmError(f"cannot locate HELM's schema_classic.yaml: {out.stderr.strip()}")
    return out.stdout.strip()


def summarize(
    run_dirs: dict[str, str | Path],
    model_dirs: dict[str, str | Path],
    out_dir: str | Path,
    summary_csv: str | Path,
    config: HelmConfig,
) -> list[dict[str, str]]:
    """One suite from every model's runs, `helm-summarize`, then `summary.csv`.

    HELM's own output stays under `out_dir/benchmark_output/runs/<suite>/` (groups/*.json, ...).
    """
    out = Path(out_dir)
    bench = out / "benchmark_output"
    suite_dir = bench / "runs" / SUITE
    if suite_dir.exists():
        shutil.rmtree(suite_dir)
    suite_dir.mkdir(parents=True)
    for model, run_dir in run_dirs.items():
        src = Path(run_dir) / "benchmark_output" / "runs" / SUITE
        if not src.is_dir():
            raise HelmError(f"{src} is missing: helm-run for {model} did not finish")
        for run in list_runs(src):
            shutil.copytree(run, suite_dir / run.name)
    write_local_config(model_dirs, out / "config", config, relative_to=out)
    cmd = [
        config.executable("helm-summarize"),
        "--suite", SUITE,
        "--output-path", "benchmark_output",
        "--local-path", "config",
        "--schema-path", schema_path(config),
        # One thread: Mako compiles templates with `ast`, and concurrent compiles in CPython 3.11
        # fail at random ("AST constructor recursion depth mismatch", seen here in 1 of 5 runs).
        "--num-threads", "1",
    ]  # fmt: skip
    log = out / "helm-summarize.log"
    if log.exists():
        log.unlink()
    run_helm_command(cmd, helm_env(True, 1), log, cwd=out)
    relocate(out, config)
    rows = summary_rows(suite_dir, list(model_dirs), config.scenarios)
    write_summary_csv(summary_csv, rows)
    return rows


def _scenario_of_header(cell: dict, group_names: dict[str, str]) -> str | None:
    run_group = (cell.get("metadata") or {}).get("run_group")
    group = group_names.get(run_group or "")
    return GROUP_TO_SCENARIO.get(group or "")


def summary_rows(
    suite_dir: str | Path, models: Sequence[str], scenarios: Sequence[str]
) -> list[dict[str, str]]:
    """Rows of summary.csv from HELM's `groups/core_scenarios.json` and per-instance stats."""
    suite = Path(suite_dir)
    schema = read_json(suite / "schema.json")
    # Header cells name a run group by its short display name.
    group_names: dict[str, str] = {}
    for group in schema.get("run_groups", []):
        for key in ("short_display_name", "display_name", "name"):
            if group.get(key):
                group_names.setdefault(group[key], group["name"])
    tables = json.loads((suite / "groups" / f"{SUMMARY_GROUP}.json").read_text(encoding="utf-8"))
    display_to_model = {m: m for m in models}
    values: dict[tuple[str, str, str], tuple[str, str, str]] = {}
    for table in tables:
        family = table.get("name") or table["title"].lower()
        if family not in HELM_FAMILIES:
            continue
        header = table["header"]
        for row in table["rows"]:
            model = display_to_model.get(row[0]["value"])
            if model is None:
                raise HelmError(
                    f"{suite}/groups/{SUMMARY_GROUP}.json: row {row[0]['value']!r} "
                    f"is not one of the models {list(models)}"
                )
            for cell_head, cell in zip(header[1:], row[1:], strict=True):
                if cell_head["value"] == "Mean win rate":
                    scenario, metric = "mean_win_rate", "mean_win_rate"
                else:
                    scenario = _scenario_of_header(cell_head, group_names)
                    if scenario not in scenarios:
                        continue
                    meta = cell_head.get("metadata") or {}
                    metric = meta.get("metric", cell_head["value"])
                    if meta.get("perturbation"):
                        metric += f" ({meta['perturbation']})"
                value = cell.get("value")
                note = ""
                if value is None:
                    note = f"not reported by HELM: {cell.get('description') or 'no value'}"
                    if family == "calibration":
                        note += _no_ece_reason(suite, model, scenario)
                key = (model, family, scenario)
                if key in values and values[key][1] != "" and value is None:
                    continue  # a second column for the same scenario (e.g. both NQ modes)
                values[key] = (metric, "" if value is None else repr(float(value)), note)
    _fill_hellaswag_calibration(suite, models, scenarios, values)
    rows = []
    for model in models:
        for family in HELM_FAMILIES:
            for scenario in ("mean_win_rate", *scenarios):
                metric, value, note = values.get(
                    (model, family, scenario),
                    (
                        "",
                        "",
                        f"not reported: no {family} column for {scenario} in HELM's "
                        f"{SUMMARY_GROUP} table",
                    ),
                )
                if family == "calibration" and scenario == "mean_win_rate" and value:
                    note = _calibration_mwr_note(values, model, scenarios)
                rows.append(
                    {
                        "model": model,
                        "family": family,
                        "scenario": scenario,
                        "metric": metric,
                        "value": value,
                        "note": note,
                    }
                )
    return rows


def _no_ece_reason(suite: Path, model: str, scenario: str) -> str:
    """Why HELM left a generation scenario's ECE out (it needs some non-zero token log-prob)."""
    prefixes = {"mmlu": "mmlu:", "boolq": "boolq:", "natural_qa": "natural_qa:", "quac": "quac:"}
    runs = find_runs(suite, model, prefixes.get(scenario, scenario))  # MMLU: one per subject
    if not runs:
        return ""
    logprobs = [
        stat["sum"]
        for run in runs
        for item in json.loads((run / "per_instance_stats.json").read_text(encoding="utf-8"))
        for stat in item["stats"]
        if stat["name"]["name"] == "logprob" and not item.get("perturbation")
    ]
    if logprobs and all(lp == 0 for lp in logprobs):
        return (
            f" (HELM skips ECE when every answer has log-prob 0: here all {len(logprobs)} "
            "answers are empty, the model ended its turn at once)"
        )
    return ""


def _calibration_mwr_note(values: dict, model: str, scenarios: Sequence[str]) -> str:
    outside = [
        s
        for s in scenarios
        if values.get((model, "calibration", s), ("", "", ""))[2].startswith("computed")
    ]
    if not outside:
        return ""
    return (
        f"HELM's win rate over the scenarios HELM reports ECE for; excludes "
        f"{', '.join(outside)} (ECE computed here, see its row)"
    )


def _fill_hellaswag_calibration(
    suite: Path, models: Sequence[str], scenarios: Sequence[str], values: dict
) -> None:
    """HELM 0.5.16 gives no ECE for multiple_choice_separate (HellaSwag): compute it likewise."""
    if "hellaswag" not in scenarios:
        return
    for model in models:
        key = (model, "calibration", "hellaswag")
        if key in values and values[key][1] != "":
            continue  # HELM reported it
        run = _find_run(suite, model, "commonsense:dataset=hellaswag")
        if run is None:
            values[key] = (ECE_METRIC, "", "not reported: no HellaSwag run for this model")
            continue
        ece = ece_from_per_instance(run / "per_instance_stats.json", split="valid")
        if ece is None:
            values[key] = (ECE_METRIC, "", "not reported: no max_prob/exact_match per instance")
            continue
        values[key] = (
            ECE_METRIC,
            repr(ece),
            "computed here from HELM's per-instance max_prob and exact_match (10 equal-mass bins, "
            "as HELM's ece_10_bin); HELM 0.5.16 reports no ECE for multiple_choice_separate",
        )


def find_runs(suite: Path, model: str, prefix: str) -> list[Path]:
    """The run folders of `model` in a suite whose names start with `prefix` (MMLU: one per
    subject). Run names put their first argument after ":" (`boolq:model=...,data_...`)."""
    tag = f"model={deployment_name(model).replace('/', '_')}"
    return [
        run
        for run in sorted(suite.iterdir())
        if run.is_dir() and run.name.startswith(prefix) and tag in re.split(r"[:,]", run.name)
    ]


def _find_run(suite: Path, model: str, prefix: str) -> Path | None:
    runs = find_runs(suite, model, prefix)
    return runs[0] if runs else None


def per_instance_pairs(path: str | Path, split: str) -> dict[int, list[tuple[float, float]]]:
    """(max_prob, exact_match) of unperturbed instances in `split`, per train trial."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    out: dict[int, list[tuple[float, float]]] = {}
    for item in data:
        if item.get("perturbation"):
            continue
        stats = {}
        for stat in item["stats"]:
            name = stat["name"]
            if name.get("split") != split or name.get("perturbation"):
                continue
            if stat.get("count", 0) > 0:
                stats[name["name"]] = stat["sum"] / stat["count"]
        if "max_prob" in stats and "exact_match" in stats:
            out.setdefault(item.get("train_trial_index", 0), []).append(
                (stats["max_prob"], stats["exact_match"])
            )
    return out


def ece_from_per_instance(path: str | Path, split: str) -> float | None:
    """Mean over train trials of `ece_10_bin` on unperturbed instances, as HELM computes it."""
    trials = per_instance_pairs(path, split)
    if not trials:
        return None
    eces = [
        ece_equal_mass([p for p, _ in pairs], [int(c) for _, c in pairs])
        for pairs in trials.values()
    ]
    return sum(eces) / len(eces)


def ece_equal_mass(probs: Sequence[float], correct: Sequence[int], num_bins: int = 10) -> float:
    """Top-label ECE with equal-mass bins (HELM's `ece_10_bin`, via the `calibration` package).

    Bins: sort the probabilities, cut them into `num_bins` near-equal groups, put each boundary
    halfway between neighbouring groups, and assign each probability to the first boundary at
    or above it; ECE = sum over bins of (bin share) * |mean probability - mean correctness|.
    """
    if len(probs) != len(correct) or not probs:
        raise ValueError("probs and correct must be non-empty and equally long")
    ordered = sorted(probs)
    k = min(num_bins, len(ordered))
    size, extra = divmod(len(ordered), k)
    groups, start = [], 0
    for i in range(k):
        end = start + size + (1 if i < extra else 0)
        groups.append(ordered[start:end])
        start = end
    bounds = sorted({(groups[i][-1] + groups[i + 1][0]) / 2 for i in range(k - 1)} | {1.0})
    bins: dict[int, list[tuple[float, int]]] = {}
    for p, c in zip(probs, correct, strict=True):
        bins.setdefault(bisect_left(bounds, p), []).append((p, c))
    n = len(probs)
    return sum(
        len(b) / n * abs(sum(p for p, _ in b) / len(b) - sum(c for _, c in b) / len(b))
        for b in bins.values()
    )


def write_summary_csv(path: str | Path, rows: Sequence[dict[str, str]]) -> None:
    import csv
    import io

    for row in rows:
        if row["value"] == "" and not row["note"]:
            raise HelmError(f"empty value without a note: {row}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HELM_SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
