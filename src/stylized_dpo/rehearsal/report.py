"""The rehearsal's report: the jobs Snakemake ran (from its log) with their declared memory
against the measured peak RSS, rows kept and dropped by reason, the paper's vLLM rewriting
requests on the same rows, and the API stand-ins' requests."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylized_dpo.rehearsal import hub, qwen, vllm_requests


@dataclass
class Job:
    rule: str
    jobid: str
    log: str = ""
    benchmark: str = ""
    wildcards: str = ""
    mem_mb: int | None = None
    peak_rss_mb: float = 0.0
    benchmark_max_rss_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_JOB_START = re.compile(r"^\s*(?:local)?rule (\w+):\s*$")
_FIELD = re.compile(r"^\s+(jobid|log|benchmark|wildcards|resources): (.*)$")


def parse_jobs(log_text: str) -> list[Job]:
    """The jobs Snakemake started, from its log: rule, jobid, log file, wildcards, mem_mb."""
    jobs: list[Job] = []
    current: Job | None = None
    for line in log_text.splitlines():
        m = _JOB_START.match(line)
        if m:
            current = Job(rule=m.group(1), jobid="")
            jobs.append(current)
            continue
        f = _FIELD.match(line)
        if current is None or not f:
            continue
        key, value = f.groups()
        if key == "jobid":
            current.jobid = value.strip()
        elif key == "log":
            current.log = value.split(" ")[0].strip().rstrip(",")
        elif key == "benchmark":
            current.benchmark = value.strip()
        elif key == "wildcards":
            current.wildcards = value.strip()
        elif key == "resources":
            mem = re.search(r"\bmem_mb=(\d+)", value)
            current.mem_mb = int(mem.group(1)) if mem else None
    return [j for j in jobs if j.rule != "all"]


def benchmark_rss(work: Path) -> dict[str, float]:
    """max_rss (MB) of every benchmark file, by its path."""
    out = {}
    for path in (work / "results" / "benchmarks").rglob("*.tsv"):
        lines = path.read_text().splitlines()
        if len(lines) >= 2:
            row = dict(zip(lines[0].split("\t"), lines[1].split("\t"), strict=False))
            try:
                out[str(path.relative_to(work))] = float(row["max_rss"])
            except (KeyError, ValueError):
                pass
    return out


def rows_report(work: Path) -> list[str]:
    """Rows kept and dropped by reason: the data cards and the tokenised shards' cards."""
    lines = []
    data = work / "results" / "data"
    cards = [
        *sorted(data.glob("**/card.json")),
        *sorted(data.glob("**/*_synth.json")),
        *sorted(data.glob("**/tokens/*.json")),
    ]
    for path in cards:
        card = json.loads(path.read_text())
        rel = path.relative_to(work / "results" / "data")
        splits = card.get("splits", {"": card}) if isinstance(card, dict) else {}
        for split, c in splits.items():
            if not isinstance(c, dict):
                continue
            read = c.get("rows_read", c.get("n_in", c.get("rows_in")))
            kept = c.get("rows_written", c.get("n_out", c.get("rows_out", c.get("kept"))))
            drops = c.get("drops") or c.get("dropped") or {}
            lines.append(
                f"| {rel} {split} | {read} | {kept} | {json.dumps(drops, sort_keys=True)} |"
            )
    return lines


def vllm_report(work: Path, seed: int, paper: dict[str, Any], styles_dir: Path) -> list[str]:
    """The paper's vLLM rewriting requests for the rows the rehearsal rewrote (see
    `vllm_requests`), and how many rewritten rows the shard length filter dropped afterwards;
    `paper`: config/paper.yaml, `styles_dir`: its style prompts."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(fixture_snapshot(work, qwen.REPO_ID))
    lines = [
        "| style, split | rows | prompt tokens p50 / max | over max_model_len | "
        "prompt + max_tokens over | rewritten, then dropped by the shard length filter |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for style in paper["styles"]:
        for split in ("train", "test"):
            pairs = work / "results" / "data" / "prefs" / "ultrafeedback" / f"{split}.jsonl"
            if not pairs.exists():  # the run stopped before the pairs were prepared
                continue
            c = vllm_requests.check_rows(
                pairs,
                styles_dir / f"{style}.yaml",
                paper["synth"],
                seed,
                tokenizer,
                hub.GEMMA3_CHAT_TEMPLATE,
            )
            shard = work / "results" / "data" / "prefs" / style / "tokens" / f"{split}.json"
            later = sum(json.loads(shard.read_text())["drops"].values()) if shard.exists() else None
            lines.append(
                f"| {style}, {split} | {c['rows']} | {c['prompt_tokens_p50']} / "
                f"{c['prompt_tokens_max']} | {c['over_max_model_len']} | "
                f"{c['prompt_plus_max_tokens_over']} (max_model_len {c['max_model_len']}, "
                f"max_tokens {c['max_tokens']}) | {later} |"
            )
    return lines


def fixture_snapshot(work: Path, repo_id: str) -> Path:
    repo = hub.repo_folder(work / "hf", repo_id)
    return repo / "snapshots" / (repo / "refs" / "main").read_text().strip()


def write_report(
    work: Path,
    seed: int,
    summary: dict[str, Any],
    peaks: dict[str, float],
    paper: dict[str, Any],
    styles_dir: Path,
) -> tuple[str, list[str]]:
    """`work/rehearsal_report.md` from the run's log, cards and measurements; returns its text
    and the jobs whose measured peak RSS exceeds their declared memory."""
    jobs = parse_jobs((work / "rehearsal.log").read_text())
    bench = benchmark_rss(work)
    over = []
    table = [
        "| job | declared mem_mb | peak RSS MB (sampled) | benchmark max_rss MB |",
        "|---|---:|---:|---:|",
    ]
    for j in jobs:
        j.peak_rss_mb = peaks.get(j.log, 0.0)
        name = f"{j.rule}" + (f" ({j.wildcards})" if j.wildcards else "")
        b = [bench[j.benchmark]] if j.benchmark in bench else []
        measured = max([j.peak_rss_mb, *b])
        if j.mem_mb is not None and measured > j.mem_mb:
            over.append(name)
        sampled = f"{j.peak_rss_mb:.0f}" if j.log in peaks else "not sampled"
        table.append(f"| {name} | {j.mem_mb} | {sampled} | {f'{b[0]:.0f}' if b else ''} |")
    rules: dict[str, int] = {}
    for j in jobs:
        rules[j.rule] = rules.get(j.rule, 0) + 1
    report = [
        f"# Rehearsal ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"snakemake exit status {summary['exit_status']}; jobs run: {len(jobs)}; snakemake wall "
        f"{summary['snakemake_wall_s'] / 60:.1f} min; total {summary['total_wall_s'] / 60:.1f} min "
        f"(offline hub {summary['fixtures_s']:.0f} s; --cores {summary['cores']})",
        "",
        "Jobs by rule: " + ", ".join(f"{r} {n}" for r, n in rules.items()),
        "",
        "## Jobs: declared memory vs measured peak RSS",
        *table,
        "",
        "## Rows kept and dropped by reason (shard cards: Qwen2.5 tokens)",
        "| card | rows in | rows kept | drops |",
        "|---|---:|---:|---|",
        *rows_report(work),
        "",
        "## The paper's vLLM rewriting requests on the same rows (Qwen2.5 tokens as a proxy)",
        *vllm_report(work, seed, paper, styles_dir),
        "",
        "## API stand-ins: requests served",
        f"```\n{json.dumps(summary['api_requests'], indent=1)}\n```",
    ]
    for run_json in sorted((work / "results" / "judge").glob("*.run.json")):
        data = json.loads(run_json.read_text())
        keep = {k: v for k, v in data.items() if k in ("items", "scored", "failed", "api_calls")}
        keep.update({k: v for k, v in data.items() if k.startswith("retries")})
        report.append(f"- {run_json.name}: {json.dumps(keep)}")
    if over:
        report += ["", f"OVER DECLARED MEMORY: {', '.join(over)}"]
    text = "\n".join(report)
    (work / "rehearsal_report.md").write_text(text + "\n")
    return text, over
