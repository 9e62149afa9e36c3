#!/usr/bin/env python3
"""Print the state of one SkyPilot managed job as Snakemake expects: running, success or failed.

Called by Snakemake's generic cluster executor as `status.py JOB_ID`. Reads `sky jobs queue`;
a launcher failure is retried (see skyjobs.run_launcher), then reported as an error (exit 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from skyjobs import (  # noqa: E402
    FAILED_STATES,
    RUNNING_STATES,
    SUCCESS_STATES,
    LauncherError,
    fail,
    run_launcher,
)

KNOWN = SUCCESS_STATES | FAILED_STATES | RUNNING_STATES


def snakemake_state(queue: str, job_id: str) -> str:
    """Map the job's row of a `sky jobs queue` table to running / success / failed."""
    for line in queue.splitlines():
        fields = line.split()
        if fields and fields[0] == job_id:
            states = [f for f in fields[1:] if f in KNOWN]
            if not states:
                raise ValueError(f"job {job_id}: no known state in row {line.strip()!r}")
            state = states[0]
            if state in SUCCESS_STATES:
                return "success"
            return "failed" if state in FAILED_STATES else "running"
    raise ValueError(f"job {job_id} is not in the launcher's job queue")


def main(job_id: str) -> None:
    try:
        queue = run_launcher(["jobs", "queue"])
        print(snakemake_state(queue, job_id))
    except (LauncherError, ValueError) as err:
        fail(str(err))


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        fail("usage: status.py JOB_ID (a managed job id printed by submit.py)")
    main(sys.argv[1])
