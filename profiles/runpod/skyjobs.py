"""Shared code of the RunPod profile's submit, status and cancel commands (stdlib only).

Snakemake's generic cluster executor calls them; they drive SkyPilot managed jobs (`sky jobs
launch | queue | cancel`), which provision a RunPod (or Lambda, ...) GPU machine per job, run
the job's Snakemake command there and tear the machine down. The launcher executable is `sky`,
or whatever RUNPOD_LAUNCHER names (the tests put a stand-in on PATH).

Secrets never leave the environment: the job's Snakemake command arrives with `export NAME=value`
declarations (Snakemake's storage credentials among them); secret-looking names are forwarded
to the launcher by name only (`--secret NAME`, which SkyPilot reads from its own environment),
and every message printed here has secret values redacted.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL", re.IGNORECASE)

# SkyPilot managed-job states -> what Snakemake's generic cluster executor expects.
SUCCESS_STATES = {"SUCCEEDED"}
FAILED_STATES = {
    "FAILED",
    "FAILED_SETUP",
    "FAILED_PRECHECKS",
    "FAILED_NO_RESOURCE",
    "FAILED_CONTROLLER",
    "CANCELLING",
    "CANCELLED",
}
RUNNING_STATES = {"PENDING", "SUBMITTED", "STARTING", "RUNNING", "RECOVERING"}


class LauncherError(RuntimeError):
    """The launcher failed after every retry, or answered something unreadable."""


def launcher() -> str:
    return os.environ.get("RUNPOD_LAUNCHER", "sky")


def secret_names(env: dict[str, str] | None = None) -> list[str]:
    """Names of the environment variables treated as secrets (plus RUNPOD_SECRETS, comma list)."""
    env = os.environ if env is None else env
    extra = {n.strip() for n in env.get("RUNPOD_SECRETS", "").split(",") if n.strip()}
    return sorted(n for n in env if SECRET_NAME.search(n) or n in extra)


def redact(text: str) -> str:
    """`text` with the value of every secret environment variable replaced by ***."""
    for name in secret_names():
        value = os.environ.get(name, "")
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text


def fail(message: str) -> None:
    print(f"{Path(sys.argv[0]).name}: {redact(message)}", file=sys.stderr)
    raise SystemExit(1)


def run_launcher(args: Sequence[str]) -> str:
    """Run `<launcher> args...` and return its stdout, retrying failures with backoff.

    RUNPOD_RETRIES (default 3) extra attempts, waiting RUNPOD_BACKOFF_S (default 5) seconds,
    doubled after each failure. Raises LauncherError (with redacted output) when all fail.
    """
    retries = int(os.environ.get("RUNPOD_RETRIES", "3"))
    wait = float(os.environ.get("RUNPOD_BACKOFF_S", "5"))
    cmd = [launcher(), *args]
    last = ""
    for attempt in range(retries + 1):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except FileNotFoundError:
            raise LauncherError(
                f"launcher '{cmd[0]}' not found: install SkyPilot (pip install 'skypilot[runpod]') "
                "or set RUNPOD_LAUNCHER"
            ) from None
        except subprocess.TimeoutExpired:
            last = "timed out after 600 s"
        else:
            if proc.returncode == 0:
                return proc.stdout
            last = f"exit {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}"
        if attempt < retries:
            print(
                redact(f"{shlex.join(cmd[:3])} failed ({last}); retry {attempt + 1}/{retries}"),
                file=sys.stderr,
            )
            time.sleep(wait)
            wait *= 2
    raise LauncherError(redact(f"{shlex.join(cmd[:3])} failed {retries + 1} times: {last}"))


def read_jobscript(path: str | os.PathLike[str]) -> tuple[dict, dict[str, str], str]:
    """The job's properties, its exported environment and its command (without the exports)."""
    lines = Path(path).read_text().splitlines()
    props: dict = {}
    for line in lines:
        if line.startswith("# properties = "):
            props = json.loads(line[len("# properties = ") :])
    body = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    if not props or not body:
        raise ValueError(f"{path}: not a Snakemake jobscript (no properties line or command)")
    tokens = shlex.split(" ".join(body))
    env: dict[str, str] = {}
    if tokens and tokens[0] == "export":
        end = tokens.index("&&")
        for assignment in tokens[1:end]:
            name, _, value = assignment.partition("=")
            env[name] = value
        tokens = tokens[end + 1 :]
    return props, env, shlex.join(tokens)
