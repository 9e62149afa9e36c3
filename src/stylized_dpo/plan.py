"""What a run will cost before it runs: tokens, GPU hours and API dollars per GPU or API stage.

Token counts come from the tokenised shards' cards (`results/data/*/tokens/<split>.json`) where
they exist, else from config `compute.plan.estimates` (rows x typical lengths), and every row
says which. GPU hours divide tokens by a per-GPU throughput from `compute.throughput`
(training: prompt and answer tokens processed per second; vLLM: generated tokens per second,
prefill not counted; HELM: requests per second), each entry labelled measured or estimate.
API dollars are input and output tokens times the config's price per million tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from stylized_dpo.plan_costs import (
    Lengths,
    StageCost,
    Throughput,
    api_usd,
    card_lengths,
    dpo_tokens,
    estimated_lengths,
    gpu_hours,
    helm_requests,
    judge_template_tokens,
    training_examples,
)


def format_plan(
    stages: list[StageCost], gpu_type: str, runtime_min: Mapping[str, int] | None = None
) -> str:
    """The plan as a fixed-width table with totals and the sources of every figure; jobs whose
    estimated wall time exceeds their rule's runtime limit (`runtime_min`) are named."""
    head = (
        f"{'stage':20s} {'jobs':>4s} {'gpus':>4s} {'tokens in':>13s} {'tokens out':>13s} "
        f"{'GPU h':>8s} {'h/job':>7s} {'API $':>9s}  counts from; throughput from"
    )
    lines = [
        f"plan for {gpu_type} GPUs (training: tokens in = tokens processed; vLLM and API: "
        "prompt tokens in, generated tokens out; GPU h over all jobs, h/job = wall hours)",
        head,
    ]

    def num(x: float | None, fmt: str) -> str:
        return format(x, fmt) if x is not None else "-".rjust(int(fmt.split(".")[0]))

    for s in stages:
        lines.append(
            f"{s.stage:20s} {s.jobs:4d} {s.gpus_per_job:4d} {s.input_tokens:13,.0f} "
            f"{s.output_tokens:13,.0f} {num(s.gpu_hours, '8.1f')} "
            f"{num(s.wall_hours_per_job, '7.2f')} {num(s.api_usd, '9.2f')}  "
            f"{s.counts_from}; {s.throughput_from or '-'}"
        )
    total_gpu = sum(s.gpu_hours or 0 for s in stages)
    total_usd = sum(s.api_usd or 0 for s in stages)
    unknown = [s.stage for s in stages if s.gpu_hours is None and s.gpus_per_job]
    unpriced = [s.stage for s in stages if s.api_usd is None and not s.gpus_per_job]
    lines.append(f"total: {total_gpu:,.1f} GPU hours, ${total_usd:,.2f} API")
    if unknown:
        lines.append(f"no throughput for {gpu_type}: {', '.join(unknown)} (compute.throughput)")
    if unpriced:
        lines.append(f"no price: {', '.join(unpriced)} (price_input_per_mtok / _output_)")
    for s in stages:
        limit = (runtime_min or {}).get(s.rule or s.stage)
        hours = s.wall_hours_per_job
        if limit is not None and hours is not None and hours * 60 > limit:
            lines.append(
                f"over its time limit: {s.stage} needs ~{hours:.1f} h per job, "
                f"compute.runtime_min allows {limit} min"
            )
    return "\n".join(lines)


def build_plan(
    cfg: Mapping[str, Any],
    models: list[str],
    pref_datasets: list[str],
    styles: list[str],
    judge_template: str,
    job_gpus: Mapping[str, int],
    results: Path = Path("results"),
) -> tuple[list[StageCost], str]:
    """Every GPU and API stage of the configured run, and the GPU type it is priced for.

    `job_gpus`: GPUs per job of each GPU rule, as the workflow sizes them.
    """
    compute = cfg.get("compute", {})
    plan_cfg = compute.get("plan", {})
    gpu_type = plan_cfg.get("gpu_type", "H100")
    est = plan_cfg.get("estimates", {})
    table = compute.get("throughput", {}).get(gpu_type, {})

    def throughput(stage: str) -> Throughput | None:
        if stage == "helm_run":  # one figure for the plan and helm_run's own runtime estimate
            return Throughput(float(cfg["helm"]["requests_per_s"]), "(helm.requests_per_s)")
        entry = table.get(stage)
        return None if entry is None else Throughput(float(entry["per_s"]), entry["source"])

    def stage(
        name: str, jobs: int, gpus_per_job: int, units: float, unit: str, label: str = "", **kw: Any
    ) -> StageCost:
        tp = throughput(name) if gpus_per_job else None
        return StageCost(
            stage=label or name,
            rule=name,
            jobs=jobs,
            gpus_per_job=gpus_per_job,
            units=units,
            unit=unit,
            gpu_hours=gpu_hours(units, tp) if gpus_per_job else None,
            throughput_from=(f"{tp.per_s:,.0f} {unit}/s {tp.source}" if tp else ""),
            **kw,
        )

    def processing(
        name: str, jobs: int, gpus_per_job: int, tokens: float, counts_from: str, label: str = ""
    ) -> StageCost:
        """A stage whose throughput divides the tokens it reads (training, reference log-probs)."""
        return stage(
            name,
            jobs,
            gpus_per_job,
            tokens,
            "tok",
            label,
            input_tokens=tokens,
            output_tokens=0,
            counts_from=counts_from,
        )

    data = cfg["data"]
    stages: list[StageCost] = []

    sft_lengths = card_lengths(results / "data/sft/tokens/train.json", "completion_tokens")
    if sft_lengths is None:
        sft_lengths = estimated_lengths(
            est.get("sft_rows"), data["sft"].get("max_rows"), {**est, "kept_fraction": 1.0}, "sft"
        )
    sft = cfg["sft"]
    examples = training_examples(
        sft_lengths.rows, sft["epochs"], sft.get("max_steps"), sft["batch_size"] * sft["grad_accum"]
    )
    sft_tokens = examples * (sft_lengths.prompt + sft_lengths.answer)
    stages.append(processing("sft", 1, job_gpus["sft"], sft_tokens, sft_lengths.source))

    def pref_lengths(dataset: str, split: str) -> Lengths:
        for d in (dataset, "ultrafeedback"):  # a style's pairs have ultrafeedback's prompts
            found = card_lengths(
                results / f"data/prefs/{d}/tokens/{split}.json", "chosen_tokens+rejected_tokens"
            )
            if found is not None:
                return found
        rows = est.get("pref_rows", {}).get(split)
        return estimated_lengths(rows, data["prefs"].get("max_rows"), est, f"prefs {split}")

    dpo_cfg = cfg["dpo"]
    sharing = dpo_cfg.get("prefix_sharing", True)
    ref_tokens = 0.0
    ref_sources = set()
    for d in pref_datasets:
        for split in ("train", "test"):
            lengths = pref_lengths(d, split)
            ref_tokens += lengths.rows * dpo_tokens(lengths, sharing)
            ref_sources.add("estimate" if lengths.estimated else "cards")
    references = 1 + ("sft-chosen" in models)  # reference log-probs per reference model
    ref_tokens *= references
    n_refs = len(pref_datasets) * 2 * references
    ref_from = " + ".join(sorted(ref_sources))
    stages.append(processing("reference_logps", n_refs, 1, ref_tokens, ref_from))

    # one row per DPO run: the UltraFeedback baseline and the style runs differ by far
    for model in [m for m in models if m.startswith("dpo-")]:
        d = model.removeprefix("dpo-").removesuffix("-after-sft-chosen")
        lengths = pref_lengths(d, "train")
        base = d.removesuffix("-tonal")
        column = dpo_cfg["ultrafeedback"] if base == "ultrafeedback" else dpo_cfg["styles"]
        column = {**column, **dpo_cfg.get("per_dataset", {}).get(d, {})}
        batch = column.get("batch_size", dpo_cfg["batch_size"]) * column.get(
            "grad_accum", dpo_cfg["grad_accum"]
        )
        n = training_examples(lengths.rows, column["epochs"], column.get("max_steps"), batch)
        tokens = n * dpo_tokens(lengths, sharing)
        counts = f"{n:,} pairs; " + ("estimate" if lengths.estimated else "cards")
        stages.append(processing("dpo", 1, job_gpus["dpo"], tokens, counts, label=model))

    if cfg["synth"]["backend"] == "vllm":
        rewrite_in = rewrite_out = 0.0
        sources = set()
        for split in ("train", "test"):
            lengths = pref_lengths("ultrafeedback", split)
            rewrite_in += len(styles) * lengths.rows * (lengths.prompt + lengths.answer)
            # a rewrite is about as long as the answer it restyles (chosen + rejected mean here)
            rewrite_out += len(styles) * lengths.rows * lengths.answer
            sources.add("estimate" if lengths.estimated else "cards")
        stages.append(
            stage(
                "style_rewrite",
                len(styles) * 2,
                job_gpus["style_rewrite"],
                rewrite_out,
                "generated tok",
                input_tokens=rewrite_in,
                output_tokens=rewrite_out,
                counts_from=" + ".join(sorted(sources)),
            )
        )

    gen = cfg["generation"]
    n_eval = data.get("eval_prompts", {}).get("n", 100)
    prompt_len = pref_lengths("ultrafeedback", "test").prompt
    gen_out = len(models) * n_eval * gen["max_new_tokens"]
    if gen["backend"] == "vllm":
        stages.append(
            stage(
                "generate",
                len(models),
                job_gpus["generate"],
                gen_out,
                "generated tok",
                input_tokens=len(models) * n_eval * prompt_len,
                output_tokens=gen_out,
                counts_from="upper bound: max_new_tokens per answer",
            )
        )

    helm = cfg["helm"]
    if job_gpus.get("helm_run"):
        requests = helm_requests(helm, len(models))
        stages.append(
            stage(
                "helm_run",
                len(models),
                1,
                requests,
                "request",
                input_tokens=0,
                output_tokens=0,
                counts_from=f"{requests:,} requests (instances x trials x copies)",
            )
        )

    judge = cfg["judge"]
    if judge["backend"] == "openai":
        calls = len(models) * n_eval
        j_in = calls * (judge_template_tokens(judge_template) + prompt_len + gen["max_new_tokens"])
        j_out = calls * judge.get("max_tokens", 512)
        stages.append(
            StageCost(
                "judge",
                len(models),
                0,
                0,
                "tok",
                j_in,
                j_out,
                counts_from="upper bound: max_new_tokens answers, max_tokens replies",
                api_usd=api_usd(
                    j_in,
                    j_out,
                    judge.get("price_input_per_mtok"),
                    judge.get("price_output_per_mtok"),
                ),
            )
        )

    wr = cfg["win_rates"]
    if wr["backend"] in ("reward_api", "pairwise_judge"):
        n = wr["n_prompts"]
        others = len([m for m in models if m != wr.get("baseline", "base")])
        if wr["backend"] == "reward_api":  # one reward per answer; the baseline's once
            calls, per_call = n * (others + 1), prompt_len + gen["max_new_tokens"]
            w_out = calls * 8.0  # "reward:<score>"
        else:  # both orders of every pair, two answers per call
            calls, per_call = 2 * n * others, prompt_len + 2 * gen["max_new_tokens"]
            w_out = calls * float(wr.get("max_tokens", 512))
        w_in = calls * per_call
        stages.append(
            StageCost(
                "win_rates",
                1,
                0,
                0,
                "tok",
                w_in,
                w_out,
                counts_from=f"{calls:,} calls, upper bound: max_new_tokens answers",
                api_usd=api_usd(
                    w_in, w_out, wr.get("price_input_per_mtok"), wr.get("price_output_per_mtok")
                ),
            )
        )
    return per_seed_stages(stages, cfg), gpu_type


def per_seed_stages(stages: list[StageCost], cfg: Mapping[str, Any]) -> list[StageCost]:
    """The stages of every training seed (config `seeds`): each runs once per seed, except the
    style rewrites (shared) and, for a hub base model (fetched once), its HELM run."""
    n = len(cfg.get("seeds", [0]))
    if n == 1:
        return stages
    hub_base = cfg["base_model"]["source"] != "pretrain"
    out = []
    for s in stages:
        jobs = s.jobs * n - (n - 1 if s.rule == "helm_run" and hub_base else 0)
        f = jobs / s.jobs
        out.append(
            s
            if s.rule == "style_rewrite"
            else replace(
                s,
                jobs=jobs,
                units=s.units * f,
                input_tokens=s.input_tokens * f,
                output_tokens=s.output_tokens * f,
                gpu_hours=None if s.gpu_hours is None else s.gpu_hours * f,
                api_usd=None if s.api_usd is None else s.api_usd * f,
                counts_from=f"{s.counts_from}; {n} seeds",
            )
        )
    return out
