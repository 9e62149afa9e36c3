"""Placement helpers for the workflow's profiles (used by rules/compute.smk and the Snakefile).

GPU rules carry `gpu`, `gpu_mem_mb`, `mem_mb`, `runtime` and `threads` resources; rules that
request no GPU run where Snakemake runs under every executor, so profiles/slurm and
profiles/runpod send only the GPU jobs away.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def gpu_runtime(compute: dict[str, Any], rule_name: str) -> int:
    """Wall-clock limit (minutes) of a GPU rule: `compute.runtime_min.<rule>`, else `default`."""
    runtimes = compute.get("runtime_min", {})
    return int(runtimes.get(rule_name, runtimes.get("default", 60)))


def cpu_rules(rules: Iterable[Any]) -> list[str]:
    """Names of the Snakemake rules whose `gpu` resource is unset or 0.

    A `gpu` given as a function is evaluated without wildcards (the workflow's ones depend on
    config only); one that needs a job's wildcards or inputs counts as a GPU rule.
    """
    from snakemake.iocontainers import Wildcards  # only inside a Snakemake run

    names = []
    for rule in rules:
        gpu = rule.resources.get("gpu")
        if gpu.is_evaluable():
            try:
                gpu = gpu.evaluate(Wildcards())
            except Exception:
                continue
        if not gpu.value:
            names.append(rule.name)
    return sorted(names)
