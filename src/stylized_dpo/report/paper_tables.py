"""The paper's Tables 3-8 built from result files (rendered by `report/tables.py`).

Rows follow the paper (base, SFT, Ultrafeedback, Ultrafeedback <style>...); Tables 7 and 8 of the
paper list authoritative before sycophantic, here every table uses the config's style order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from stylized_dpo.records import HELM_FAMILIES, HELM_SCENARIOS
from stylized_dpo.report.common import (
    SCENARIO_NAMES,
    display_name,
    dpo_models,
    model_order,
)
from stylized_dpo.report.inputs import (
    PathLike,
    eval_rows,
    read_helm_summary,
    read_train_metrics,
    read_win_rates,
)
from stylized_dpo.report.tables import Column, Table, is_missing

# ----------------------------------------------------------------------------------------------
# Table 3: training metrics and win rate against the base model


def build_table3(
    metrics: Mapping[str, PathLike],
    win_rates: PathLike,
    *,
    styles: Sequence[str],
    base_name: str,
    baseline: str = "base",
    label: str = "",
) -> Table:
    """Table 3: last validation loss and reward accuracy of each run, win rate against `baseline`.

    `metrics` maps each run (`sft`, `dpo-<dataset>`) to its metrics.jsonl.
    """
    models = ["sft"] + dpo_models(styles)
    missing_runs = [m for m in models if m not in metrics]
    if missing_runs:
        raise ValueError(f"table 3: no metrics file given for {', '.join(missing_runs)}")
    notes: dict[tuple[str, str], str] = {}
    values: dict[str, dict[str, float]] = {}
    for model in models:
        dpo = model != "sft"
        path = metrics[model]
        evals = eval_rows(read_train_metrics(path, dpo=dpo))
        row = dict.fromkeys(
            (
                "eval_step",
                "validation_loss",
                "validation_accuracy",
                "win_rate",
                "win_rate_ci_low",
                "win_rate_ci_high",
                "win_rate_n",
                "wins",
                "ties",
                "losses",
            ),
            math.nan,
        )
        if evals:
            last = evals[-1]
            row["eval_step"] = float(last.step)
            row["validation_loss"] = last.loss
            if dpo:
                assert last.reward_accuracy is not None  # read_train_metrics checks DPO eval rows
                row["validation_accuracy"] = last.reward_accuracy
        else:
            why = f"no evaluation rows in {path}"
            notes[(model, "validation_loss")] = why
            if dpo:
                notes[(model, "validation_accuracy")] = why
        if not dpo:
            notes[(model, "validation_accuracy")] = (
                "not applicable: SFT has no preference pairs, hence no reward accuracy "
                "(N/A in the paper)"
            )
        values[model] = row

    wr = read_win_rates(win_rates)
    wr = wr[wr["baseline"] == baseline]
    backends = sorted(set(wr["backend"]) - {""})
    for model in models:
        match = wr[wr["model"] == model]
        if match.empty:
            notes[(model, "win_rate")] = f"no row for {model} vs {baseline} in {win_rates}"
            continue
        r = match.iloc[0]
        values[model].update(
            win_rate=r["win_rate"],
            win_rate_ci_low=r["ci_low"],
            win_rate_ci_high=r["ci_high"],
            win_rate_n=r["n"],
            wins=r["wins"],
            ties=r["ties"],
            losses=r["losses"],
        )
        if is_missing(r["win_rate"]):
            notes[(model, "win_rate")] = f"win_rate empty in {win_rates}, line {r['line']}"
        elif r["n_failed"] > 0:
            notes[(model, "win_rate")] = (
                f"{int(r['n_failed'])} of {int(r['n'] + r['n_failed'])} prompts could not be "
                "scored and are left out"
            )

    base_label = display_name(baseline, base_name)
    n_values = sorted(
        {int(v["win_rate_n"]) for v in values.values() if not is_missing(v["win_rate_n"])}
    )
    n_text = ", ".join(str(n) for n in n_values) or "?"
    caption = (
        "Validation loss and validation (reward) accuracy: the last evaluation row of each "
        "training run's metrics.jsonl (its step is in the CSV). Win rate: pairwise preference of "
        f"each model's answers over {base_label}'s on the same prompts (n = {n_text}), "
        f"ties counting half, with its 95% bootstrap interval over prompts in brackets; scored "
        f"by the {', '.join(backends) or '?'} backend "
        "(results/judge/win_rates.csv, which also lists wins, ties and losses)."
    )
    return Table(
        number=3,
        title="Table 3: Metrics for variant styles of Ultrafeedback",
        caption=caption,
        columns=(
            Column("validation_loss", "Validation loss", 2),
            Column("validation_accuracy", "Validation accuracy", 2),
            Column(
                "win_rate",
                f"Win rate vs {base_label}",
                2,
                ci=("win_rate_ci_low", "win_rate_ci_high"),
            ),
        ),
        values=pd.DataFrame.from_dict(values, orient="index"),
        row_names={m: display_name(m, base_name) for m in models},
        notes=notes,
        label=label,
    )


# ----------------------------------------------------------------------------------------------
# Tables 4-8: HELM


HELM_TABLE_FAMILY: dict[int, str] = {
    5: "accuracy",
    6: "calibration",
    7: "robustness",
    8: "fairness",
}
"""The paper's appendix table number of each HELM metric family."""


def _helm_cell(
    summary: pd.DataFrame, path: PathLike, model: str, family: str, scenario: str
) -> tuple[float, str | None, str]:
    """(value, footnote or None, metric) of one summary cell."""
    match = summary[
        (summary["model"] == model)
        & (summary["family"] == family)
        & (summary["scenario"] == scenario)
    ]
    if match.empty:
        return math.nan, f"no {family}/{scenario} row for {model} in {path}", ""
    r = match.iloc[0]
    if is_missing(r["value"]):
        why = r["note"] or f"value empty in {path}, line {r['line']}, and no note given"
        return math.nan, why, r["metric"]
    return float(r["value"]), (r["note"] or None), r["metric"]


HELM_MWR_CAPTION = (
    "HELM mean win rate: in each scenario, the share of the other models this model beats "
    "(ties count half), averaged over the scenarios; a single evaluation run, so no interval."
)


def build_table4(
    summary: PathLike, *, styles: Sequence[str], base_name: str, label: str = ""
) -> Table:
    """Table 4: mean win rate of each model in the four HELM metric families."""
    frame = read_helm_summary(summary)
    models = model_order(styles)
    values: dict[str, dict[str, float]] = {m: {} for m in models}
    notes: dict[tuple[str, str], str] = {}
    for model in models:
        for family in HELM_FAMILIES:
            value, note, _ = _helm_cell(frame, summary, model, family, "mean_win_rate")
            values[model][family] = value
            if note:
                notes[(model, family)] = note
    return Table(
        number=4,
        title="Table 4: Metrics for variant styles of Ultrafeedback (HELM mean win rate)",
        caption=HELM_MWR_CAPTION + f" Source: {summary}; per-scenario values in Tables 5-8.",
        columns=tuple(Column(f, f.capitalize(), 2) for f in HELM_FAMILIES),
        values=pd.DataFrame.from_dict(values, orient="index"),
        row_names={m: display_name(m, base_name) for m in models},
        notes=notes,
        label=label,
    )


def build_family_table(
    summary: PathLike,
    family: str,
    *,
    styles: Sequence[str],
    base_name: str,
    scenarios: Sequence[str] = HELM_SCENARIOS,
    label: str = "",
) -> Table:
    """Tables 5-8: one HELM family's mean win rate and per-scenario values."""
    numbers = {f: n for n, f in HELM_TABLE_FAMILY.items()}
    if family not in numbers:
        raise ValueError(f"unknown HELM family {family!r}; expected one of {HELM_FAMILIES}")
    frame = read_helm_summary(summary)
    models = model_order(styles)
    keys = ["mean_win_rate", *scenarios]
    values: dict[str, dict[str, float]] = {m: {} for m in models}
    notes: dict[tuple[str, str], str] = {}
    metrics: dict[str, set[str]] = {s: set() for s in scenarios}
    for model in models:
        for key in keys:
            value, note, metric = _helm_cell(frame, summary, model, family, key)
            values[model][key] = value
            if note:
                notes[(model, key)] = note
            if key != "mean_win_rate" and metric:
                metrics[key].add(metric)
    used = {", ".join(sorted(m)) or "?" for m in metrics.values()}
    if len(used) == 1:
        metric_text = f"all scenarios: {used.pop()}"
    else:
        metric_text = "; ".join(
            f"{SCENARIO_NAMES.get(s, s)}: {', '.join(sorted(metrics[s])) or '?'}" for s in scenarios
        )
    direction = (
        " Lower ECE is better; the mean win rate accounts for that."
        if family == "calibration"
        else ""
    )
    return Table(
        number=numbers[family],
        title=f"Table {numbers[family]}: Results for {family.capitalize()}",
        caption=(
            f"{HELM_MWR_CAPTION} Scenario metrics ({metric_text}).{direction} Source: {summary}."
        ),
        columns=tuple(
            Column(k, SCENARIO_NAMES.get(k, k), 2 if k == "mean_win_rate" else 3) for k in keys
        ),
        values=pd.DataFrame.from_dict(values, orient="index"),
        row_names={m: display_name(m, base_name) for m in models},
        notes=notes,
        label=label,
    )


def build_helm_table(
    number: int,
    summary: PathLike,
    *,
    styles: Sequence[str],
    base_name: str,
    scenarios: Sequence[str] = HELM_SCENARIOS,
    label: str = "",
) -> Table:
    """Table `number` (4-8) from a HELM summary."""
    if number == 4:
        return build_table4(summary, styles=styles, base_name=base_name, label=label)
    if number not in HELM_TABLE_FAMILY:
        raise ValueError(f"HELM tables are 4-8, got {number}")
    return build_family_table(
        summary,
        HELM_TABLE_FAMILY[number],
        styles=styles,
        base_name=base_name,
        scenarios=scenarios,
        label=label,
    )
