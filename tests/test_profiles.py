"""The execution profiles: dry runs of the paper's study under local, slurm and runpod, the
multi-GPU switch, and the RunPod submit/status/cancel commands against a stand-in launcher.

The runpod dry run reads its S3 storage from an empty local stand-in bucket holding only the
repository's config/ (the one-time set-up copies it there). The launcher stand-in is an
executable `sky` put first on PATH: it records the job specification it is given and answers
with scripted states; no network, no real launcher.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from fake_s3 import FakeS3

from stylized_dpo.cluster import (
    RUNPOD_CHECKPOINT_MOUNT,
    SOFTWARE_ENVS,
    missing_checkpoint_volume,
)

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
RUNPOD = ROOT / "profiles" / "runpod"
GPU_RULES = {"sft", "dpo", "reference_logps", "generate", "style_rewrite", "helm_run"}
PAPER_JOBS = {
    "sft": 1,
    "dpo": 4,
    "reference_logps": 8,
    "style_rewrite": 6,
    "generate": 6,
    "helm_run": 6,
    "judge": 6,
    "fetch_base_model": 1,
    "prepare_sft": 1,
    "prepare_prefs": 1,
}
SECRET = "sk-test-5ecret-value-0123"
SOFTWARE_ENV = {"generate": "vllm", "style_rewrite": "vllm", "helm_run": "helm"}


# profiles/slurm deploys each rule's conda environment. conda is not installed here, and a dry
# run only asks conda about itself (info, version, channel priority): a stand-in answers that.
FAKE_CONDA = r"""#!/bin/sh
case "$1 $2" in
  "info --json") echo '{"conda_prefix": "/nonexistent/conda", "platform": "linux-64"}' ;;
  "--version ") echo 'conda 24.11.0' ;;
  "config --get") echo '{"get": {"channel_priority": "strict"}}' ;;
  *) echo "stand-in conda: unexpected call: $*" >&2; exit 2 ;;
esac
"""


def with_conda(env: dict[str, str]) -> dict[str, str]:
    bin_dir = Path(tempfile.mkdtemp(prefix="fake-conda-"))
    conda = bin_dir / "conda"
    conda.write_text(FAKE_CONDA)
    conda.chmod(0o755)
    return env | {"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}


def dry_run(profile: str, *extra: str, env: dict | None = None) -> str:
    cmd = [str(SNAKEMAKE), "-n", "--forceall", "--verbose", "--profile", f"profiles/{profile}"]
    cmd += ["--configfile", "config/paper.yaml", *extra]
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=with_conda(env or dict(os.environ)),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def job_table(output: str) -> dict[str, list[dict[str, str]]]:
    """rule -> the resources of each of its jobs, from a dry run's job listing."""
    jobs: dict[str, list[dict[str, str]]] = {}
    rule = None
    for line in output.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line):
            rule = m.group(1)
        elif rule and (m := re.match(r"^\s+resources: (.*)$", line)):
            jobs.setdefault(rule, []).append(
                dict(kv.split("=", 1) for kv in m.group(1).split(", "))
            )
            rule = None
    return jobs


def local_rules(output: str) -> set[str]:
    m = re.search(r"local rules \(no GPU\): (.*)", output)
    assert m, "rules/compute.smk did not log its local rules"
    return set(m.group(1).split())


def print_table(title: str, jobs: dict[str, list[dict[str, str]]], local: set[str]) -> None:
    """One line per rule: jobs, where they run (`away`: slurm/RunPod job), resources."""
    print(f"\n{title}")
    for rule, rows in sorted(jobs.items()):
        res = rows[0]
        keys = ("gpu", "gpu_mem_mb", "mem_mb", "runtime")
        shown = " ".join(f"{k}={res[k]}" for k in keys if k in res)
        print(f"  {rule:18s} x{len(rows):<2d} {'here' if rule in local else 'away'} {shown}")


def runpod_env(s3_url: str) -> dict[str, str]:
    return os.environ | {
        "SNAKEMAKE_STORAGE_S3_ACCESS_KEY": "test-access",
        "SNAKEMAKE_STORAGE_S3_SECRET_KEY": SECRET,
        "SNAKEMAKE_STORAGE_S3_ENDPOINT_URL": s3_url,
    }


def config_objects() -> dict[str, int]:
    files = [p for p in (ROOT / "config").rglob("*") if p.is_file()]
    return {f"stylized-dpo/run/{p.relative_to(ROOT)}": p.stat().st_size for p in files}


@pytest.mark.parametrize("profile", ["local", "slurm", "runpod"])
def test_dry_run_of_the_paper_lists_every_job_with_its_resources(profile, capsys):
    if profile == "runpod":
        with FakeS3(config_objects()) as s3:
            out = dry_run(profile, "--storage-s3-endpoint-url", s3.url, env=runpod_env(s3.url))
        assert SECRET not in out
    else:
        out = dry_run(profile)
    jobs = job_table(out)
    local = local_rules(out)
    with capsys.disabled():
        here = set(jobs) if profile == "local" else local  # the local executor runs everything
        print_table(f"{profile}: {sum(map(len, jobs.values()))} jobs", jobs, here)
    assert {rule: len(jobs[rule]) for rule in PAPER_JOBS} == PAPER_JOBS
    assert local.isdisjoint(GPU_RULES)
    assert {"judge", "prepare_sft", "win_rates", "table3", "helm_summarize"} <= local
    for rule in GPU_RULES:
        for res in jobs[rule]:
            assert res["gpu"] == "1", (rule, res)
            # training jobs size mem_mb from their inputs (stylized_dpo.resources): <TBD> until
            # the model and shards exist
            sized_later = rule in ("sft", "dpo", "reference_logps") and res["mem_mb"] == "<TBD>"
            assert sized_later or int(res["mem_mb"]) >= 4000, (rule, res)
            assert res["gpu_mem_mb"] == "80000" and int(res["runtime"]) >= 60, (rule, res)
            # each GPU job names its software environment (RunPod picks the image by it)
            assert res["software_env"] == SOFTWARE_ENV.get(rule, "training"), (rule, res)
    assert jobs["sft"][0]["runtime"] == "720"
    for rule in local - {"all"}:
        assert "gpu" not in jobs.get(rule, [{}])[0] or jobs[rule][0]["gpu"] == "0"


@pytest.mark.parametrize("profile", ["slurm", "runpod"])
def test_the_design_cards_commands_resolve_verbatim(profile, tmp_path):
    """`snakemake --profile slurm all` on a fresh clone: no profile in the user's or the site's
    config folders (a stand-in HOME), so the bare name must resolve from the repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env |= {"HOME": str(tmp_path), "XDG_CONFIG_DIRS": str(tmp_path / "etc")}
    cmd = [str(SNAKEMAKE), "--profile", profile, "all", "-n", "--verbose"]
    if profile == "runpod":
        with FakeS3(config_objects()) as s3:
            env = runpod_env(s3.url) | {
                "HOME": env["HOME"],
                "XDG_CONFIG_DIRS": env["XDG_CONFIG_DIRS"],
            }
            env = {k: v for k, v in env.items() if k not in ("XDG_CONFIG_HOME",)}
            proc = subprocess.run(
                [*cmd, "--storage-s3-endpoint-url", s3.url],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
            )
    else:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=with_conda(env)
        )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert f"Using profile {profile}" in out
    assert "sft" in job_table(out) and "sft" not in local_rules(out)  # sent away, not local


def test_one_switch_sizes_every_multi_gpu_job(tmp_path):
    override = tmp_path / "four_gpus.yaml"
    override.write_text("compute: {gpus: 4, gpu_mem_mb: 80000}\n")
    out = dry_run("slurm", "--configfile", "config/paper.yaml", str(override))
    jobs = job_table(out)
    for rule in ("sft", "dpo"):
        assert {res["gpu"] for res in jobs[rule]} == {"4"}, rule
    for rule in ("generate", "style_rewrite"):  # their models fit one GPU: one engine per GPU
        assert {res["gpu"] for res in jobs[rule]} == {"1"}, rule
    assert {res["gpu"] for res in jobs["reference_logps"]} == {"1"}  # inference: one GPU
    assert {res["runtime"] for res in jobs["sft"]} == {"720"}  # the rest of paper.yaml stays


def test_a_second_tensor_parallel_switch_is_refused(tmp_path):
    override = tmp_path / "tp.yaml"
    override.write_text(
        "compute: {gpus: 2}\nsynth: {backend: vllm, vllm: {tensor_parallel_size: 4}}\n"
    )
    proc = subprocess.run(
        [str(SNAKEMAKE), "-n", "--configfile", "config/paper.yaml", str(override)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "differs from the parallelism chosen for google/gemma-3-12b-it" in proc.stdout


# ---------------------------------------------------------------------------------------------
# The RunPod commands against a stand-in launcher.

STAND_IN = r'''#!{python}
"""Stand-in for SkyPilot's `sky jobs launch|queue|cancel`: records, answers from a script."""
import json, os, sys
state_dir = os.environ["FAKE_SKY_DIR"]
script_path = os.path.join(state_dir, "script.json")
script = json.load(open(script_path))
args = sys.argv[1:]
call = {{"argv": args}}
if script.get("fail", 0) > 0:  # a transient launcher error that echoes a credential
    script["fail"] -= 1
    json.dump(script, open(script_path, "w"))
    token = os.environ.get("SNAKEMAKE_STORAGE_S3_SECRET_KEY", "")
    print("API error, token " + token, file=sys.stderr)
    sys.exit(1)
if args[:2] == ["jobs", "launch"]:
    call["task"] = json.load(open(args[-1]))
    names = [args[i + 1] for i, a in enumerate(args) if a == "--secret"]
    call["secrets_readable"] = {{n: n in os.environ for n in names}}
    script["next_id"] = script.get("next_id", 1)
    print("Launching managed job...\nManaged job ID: %d" % script["next_id"])
    script["next_id"] += 1
elif args[:2] == ["jobs", "queue"]:
    state = script["states"].pop(0)
    print("Fetching managed job statuses...\nManaged jobs")
    print("ID  TASK  NAME       REQUESTED   SUBMITTED  TOT. DURATION  #RECOVERIES  STATUS")
    print("9   -     smk-other  1x[L4:1]    1 hr ago   1h             0            RUNNING")
    print("3   -     smk-sft-5  1x[H100:1]  1 min ago  1m 2s          0            " + state)
elif args[:2] == ["jobs", "cancel"]:
    print("Cancelling managed jobs " + " ".join(args[3:]))
else:
    print("stand-in: unknown command", args, file=sys.stderr)
    sys.exit(2)
open(os.path.join(state_dir, "calls.jsonl"), "a").write(json.dumps(call) + "\n")
json.dump(script, open(script_path, "w"))
'''


@pytest.fixture
def launcher(tmp_path):
    """A stand-in `sky` first on PATH; returns (env, state dir, work dir)."""
    bin_dir, state, work = tmp_path / "bin", tmp_path / "sky", tmp_path / "work"
    for d in (bin_dir, state, work):
        d.mkdir()
    sky = bin_dir / "sky"
    sky.write_text(STAND_IN.format(python=sys.executable))
    sky.chmod(0o755)
    (state / "script.json").write_text(json.dumps({"states": []}))
    env = os.environ | {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_SKY_DIR": str(state),
        "RUNPOD_IMAGE": "ghcr.io/example/stylized-dpo:1.0",
        "RUNPOD_BACKOFF_S": "0",
        "SNAKEMAKE_STORAGE_S3_ACCESS_KEY": "test-access",
        "SNAKEMAKE_STORAGE_S3_SECRET_KEY": SECRET,
        "HF_TOKEN": "hf_" + SECRET,
        "RUNPOD_SECRETS": "HF_TOKEN",
    }
    return env, state, work


def script(state: Path, **values) -> None:
    (state / "script.json").write_text(json.dumps({"states": [], **values}))


def calls(state: Path) -> list[dict]:
    path = state / "calls.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def run(command: str, *args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(RUNPOD / command), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def jobscript(
    path: Path, rule: str = "sft", gpu: int = 2, gpu_mem_mb: int = 80000, env: str = "training"
) -> Path:
    """A jobscript as Snakemake's generic cluster executor writes it (same template)."""
    resources = {"mem_mb": 64000, "gpu": gpu, "gpu_mem_mb": gpu_mem_mb, "runtime": 720}
    props = {
        "type": "single",
        "rule": rule,
        "local": False,
        "threads": 8,
        "resources": resources | {"software_env": env},
        "jobid": 5,
    }
    exports = {
        "SNAKEMAKE_STORAGE_S3_ACCESS_KEY": "test-access",
        "SNAKEMAKE_STORAGE_S3_SECRET_KEY": SECRET,
        "PYTHONHASHSEED": "0",
    }
    declared = " ".join(f"{k}={v!r}" for k, v in exports.items())
    command = (
        "python -m snakemake --snakefile Snakefile --target-jobs 'sft:' --allowed-rules sft "
        "--cores all --default-storage-provider s3 --default-storage-prefix s3://stylized-dpo/run"
    )
    path.write_text(
        f"#!/bin/sh\n# properties = {json.dumps(props)}\nexport {declared} && {command}\n"
    )
    return path


def test_submit_launches_the_job_spec_without_secrets(launcher):
    env, state, work = launcher
    proc = run("submit.py", str(jobscript(work / "job.sh")), env=env, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"  # the managed job id, for status and cancel
    (call,) = calls(state)
    task = call["task"]
    print("\nstand-in launcher received:", json.dumps(call, indent=1))
    assert call["argv"][:6] == ["jobs", "launch", "--name", "smk-sft-5", "--yes", "--detach-run"]
    accelerators = [
        "A100-80GB",
        "A100-80GB-SXM",
        "H100",
        "H100-SXM",
        "H100-NVL",
        "H200-SXM",
        "B200",
    ]
    assert task["resources"]["accelerators"] == dict.fromkeys(accelerators, 2)
    assert task["resources"]["image_id"] == "docker:ghcr.io/example/stylized-dpo:1.0"
    assert task["resources"]["infra"] == "runpod"
    assert (task["resources"]["cpus"], task["resources"]["memory"]) == ("8+", "64+")
    assert task["run"].startswith("timeout 43200 python -m snakemake --snakefile Snakefile")
    assert "--target-jobs sft:" in task["run"]
    assert task["envs"] == {"PYTHONHASHSEED": "0"}
    secrets = ["HF_TOKEN", "SNAKEMAKE_STORAGE_S3_ACCESS_KEY", "SNAKEMAKE_STORAGE_S3_SECRET_KEY"]
    assert task["secrets"] == dict.fromkeys(secrets)
    assert call["secrets_readable"] == dict.fromkeys(secrets, True)  # by name, from the env
    # secret hygiene: no value in the spec, the recorded call, the spec file or any output
    written = [p.read_text() for p in (work / ".snakemake").rglob("*") if p.is_file()]
    for text in [json.dumps(call), proc.stdout, proc.stderr, *written]:
        assert SECRET not in text and "test-access" not in text


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("PENDING", "running"),
        ("STARTING", "running"),
        ("RUNNING", "running"),
        ("RECOVERING", "running"),
        ("SUCCEEDED", "success"),
        ("FAILED", "failed"),
        ("FAILED_SETUP", "failed"),
        ("FAILED_NO_RESOURCE", "failed"),
        ("CANCELLED", "failed"),
    ],
)
def test_status_maps_launcher_states(launcher, state, expected):
    env, sky, work = launcher
    script(sky, states=[state])
    proc = run("status.py", "3", env=env, cwd=work)
    assert (proc.returncode, proc.stdout) == (0, expected + "\n"), proc.stderr


def test_status_retries_a_failing_launcher_and_redacts_its_output(launcher):
    env, sky, work = launcher
    script(sky, states=["RUNNING"], fail=2)
    proc = run("status.py", "3", env=env, cwd=work)
    assert (proc.returncode, proc.stdout) == (0, "running\n")
    assert proc.stderr.count("retry") == 2 and "***" in proc.stderr
    assert SECRET not in proc.stderr

    script(sky, states=["RUNNING"], fail=5)
    proc = run("status.py", "3", env=env | {"RUNPOD_RETRIES": "2"}, cwd=work)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "failed 3 times" in proc.stderr and SECRET not in proc.stderr


def test_status_of_an_unknown_job_is_an_error(launcher):
    env, sky, work = launcher
    script(sky, states=["RUNNING"])
    proc = run("status.py", "42", env=env, cwd=work)
    assert proc.returncode == 1 and "job 42 is not in the launcher's job queue" in proc.stderr


def test_cancel_passes_every_job_id(launcher):
    env, sky, work = launcher
    proc = run("cancel.py", "3", "4", env=env, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert [c["argv"] for c in calls(sky)] == [["jobs", "cancel", "--yes", "3", "4"]]
    assert run("cancel.py", "3;rm", env=env, cwd=work).returncode == 1


def test_submit_asks_for_gpus_by_the_names_of_skypilots_runpod_catalogue(launcher):
    env, sky, work = launcher
    proc = run("submit.py", str(jobscript(work / "h200.sh", gpu_mem_mb=120_000)), env=env, cwd=work)
    assert proc.returncode == 0, proc.stderr
    (call,) = calls(sky)
    # SkyPilot's RunPod catalogue has no plain `H200`: an unknown name fails the launch.
    assert call["task"]["resources"]["accelerators"] == {"H200-SXM": 2, "B200": 2}


def test_submit_runs_each_job_in_the_image_of_its_rules_environment(launcher):
    env, sky, work = launcher
    env = env | {"RUNPOD_IMAGE_VLLM": "ghcr.io/example/vllm:1", "RUNPOD_IMAGE_HELM": "h:1"}
    for rule, software_env in [("generate", "vllm"), ("helm_run", "helm"), ("dpo", "training")]:
        script = jobscript(work / f"{rule}.sh", rule=rule, env=software_env)
        assert run("submit.py", str(script), env=env, cwd=work).returncode == 0
    images = [c["task"]["resources"]["image_id"] for c in calls(sky)]
    assert images == [
        "docker:ghcr.io/example/vllm:1",
        "docker:h:1",
        "docker:ghcr.io/example/stylized-dpo:1.0",
    ]
    no_vllm = {k: v for k, v in env.items() if k != "RUNPOD_IMAGE_VLLM"}
    proc = run(
        "submit.py", str(jobscript(work / "g.sh", "generate", env="vllm")), env=no_vllm, cwd=work
    )
    assert proc.returncode == 1
    assert "rule generate runs in envs/vllm.yaml: RUNPOD_IMAGE_VLLM is not set" in proc.stderr
    # the workflow's start-up check reads the same table
    sys.path.insert(0, str(RUNPOD))
    import submit

    assert submit.IMAGE_VARIABLES == {k: v["image"] for k, v in SOFTWARE_ENVS.items()}


def test_submit_mounts_the_checkpoint_volume_where_training_resumes(launcher, tmp_path):
    env, sky, work = launcher
    env = env | {"RUNPOD_CHECKPOINT_VOLUME": "ckpt-vol"}
    assert run("submit.py", str(jobscript(work / "job.sh")), env=env, cwd=work).returncode == 0
    (call,) = calls(sky)
    assert call["task"]["volumes"] == {"/mnt/checkpoints": "ckpt-vol"}
    sys.path.insert(0, str(RUNPOD))
    import submit

    assert submit.CHECKPOINT_MOUNT == RUNPOD_CHECKPOINT_MOUNT
    # the start-up check: training jobs on RunPod need that volume and checkpoints.dir on it
    volume = {"RUNPOD_CHECKPOINT_VOLUME": "ckpt-vol"}
    assert missing_checkpoint_volume(["sft", "judge"], "/mnt/checkpoints/run", volume) == []
    assert missing_checkpoint_volume(["generate"], "results/train", {}) == []
    (problem,) = missing_checkpoint_volume(["dpo", "sft"], "results/train", volume)
    assert "(dpo, sft)" in problem and "checkpoints.dir='results/train'" in problem
    (problem,) = missing_checkpoint_volume(["sft"], "/mnt/checkpoints/run", {})
    assert "RUNPOD_CHECKPOINT_VOLUME" in problem


def test_submit_refuses_cpu_jobs_and_missing_settings(launcher):
    env, sky, work = launcher
    proc = run("submit.py", str(jobscript(work / "cpu.sh", rule="judge", gpu=0)), env=env, cwd=work)
    assert proc.returncode == 1 and "requests no GPU" in proc.stderr
    no_image = {k: v for k, v in env.items() if k != "RUNPOD_IMAGE"}
    proc = run("submit.py", str(jobscript(work / "job.sh")), env=no_image, cwd=work)
    assert proc.returncode == 1 and "RUNPOD_IMAGE is not set" in proc.stderr
    assert "rule sft runs in envs/training.yaml" in proc.stderr
    proc = run("submit.py", str(jobscript(work / "big.sh", gpu_mem_mb=500_000)), env=env, cwd=work)
    assert proc.returncode == 1 and "no GPU type has 500000 MB" in proc.stderr
    assert calls(sky) == []  # nothing was launched


def test_a_runpod_run_without_the_vllm_and_helm_images_stops_before_any_job(launcher):
    """The real command (no dry run): the start-up check names each rule and the image variable
    it lacks, before anything is launched or written to the bucket (which is read-only here)."""
    env, sky, _ = launcher
    env = {k: v for k, v in env.items() if not k.startswith("RUNPOD_IMAGE_")}
    with FakeS3(config_objects()) as s3:
        proc = subprocess.run(
            [str(SNAKEMAKE), "--profile", "runpod", "--nolock", "--configfile", "config/paper.yaml"]
            + ["--storage-s3-endpoint-url", s3.url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env=runpod_env(s3.url) | env,
        )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    for rule, variable in [
        ("generate", "RUNPOD_IMAGE_VLLM"),
        ("style_rewrite", "RUNPOD_IMAGE_VLLM"),
        ("helm_run", "RUNPOD_IMAGE_HELM"),
    ]:
        assert f"rule {rule} runs in envs/" in out and f"set {variable}" in out
    assert "rule sft runs" not in out  # RUNPOD_IMAGE is set
    assert calls(sky) == []  # nothing launched
    assert SECRET not in out


def test_the_slurm_profile_deploys_each_rules_conda_environment():
    """vLLM pins its own torch: without conda, slurm jobs of the vLLM rules have no vllm."""
    import yaml

    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["software-deployment-method"] == "conda"


def test_a_runpod_dry_run_of_two_seeds_maps_every_seeds_files_to_storage():
    with FakeS3(config_objects()) as s3:
        out = dry_run(
            "runpod",
            str(ROOT / ".test" / "seeds.yaml"),
            "--storage-s3-endpoint-url",
            s3.url,
            env=runpod_env(s3.url),
        )
    jobs = job_table(out)
    assert len(jobs["sft"]) == 2 and len(jobs["seeds_summary"]) == 1
    assert "s3://stylized-dpo/run/results/seeds/1/tables/table3.csv" in out
    assert "s3://stylized-dpo/run/results/tables/seeds_summary.csv" in out
    assert "s3://stylized-dpo/run/results/tables/claims_seeds.md" in out
    assert "s3://stylized-dpo/run/results/tables/table3_seeds.csv" in out
    assert ".snakemake/storage/s3/stylized-dpo/run/results/seeds/1/models/sft" in out
    assert "s3://stylized-dpo/run/.snakemake" not in out  # no local copy's path mapped twice
