#!/usr/bin/env python3
"""Cancel SkyPilot managed jobs: `cancel.py JOB_ID...` (Snakemake calls it on Ctrl-C)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from skyjobs import LauncherError, fail, run_launcher  # noqa: E402

if __name__ == "__main__":
    ids = sys.argv[1:]
    if not ids or not all(i.isdigit() for i in ids):
        fail("usage: cancel.py JOB_ID... (managed job ids printed by submit.py)")
    try:
        run_launcher(["jobs", "cancel", "--yes", *ids])
    except LauncherError as err:
        fail(str(err))
