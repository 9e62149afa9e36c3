"""Run the rehearsal: build the offline hub, start the API stand-ins, run Snakemake on
config/paper.yaml + config/rehearsal.yaml in a working directory of its own, then report the job
list, wall time, rows kept and dropped by reason, API faults served and retried, and each job's
declared memory against its measured peak RSS (a job over its declaration fails the rehearsal).

Peak RSS is sampled for every job, with or without a `benchmark:` directive: each job's script
writes its log under `logs/`, so the process holding a log file open (with its children) is that
job; where a rule has a benchmark file its `max_rss` is shown beside the sample.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psutil
import yaml

from stylized_dpo.hashing import concat_digest
from stylized_dpo.rehearsal import datasets, hub, qwen, report, servers
from stylized_dpo.world.helm_local_data import write_helm_local_data

REPO = Path(__file__).resolve().parents[3]
CONFIGS = [REPO / "config" / "paper.yaml", REPO / "config" / "rehearsal.yaml"]
TARGETS = ["all"]
"""Every artefact of paper.yaml's DAG: the tables and figures (HELM's too), statistics and the
reproduction comparison."""
SIZES = {"sft_train": 64, "sft_test": 16, "prefs_train": 48, "prefs_test": 16}
API_KEY = "rehearsal-local-key"


def build_fixtures(work: Path, n_layers: int, seed: int) -> dict[str, Any]:
    """The hub cache (models and datasets) under `work/hf`, unless the one there was built with
    the same settings by the same code."""
    hf_home = work / "hf"
    code = concat_digest(m.__file__ for m in (datasets, hub, qwen))
    spec = {"layers": n_layers, "seed": seed, "sizes": SIZES, "code": code}
    marker = hf_home / "rehearsal_fixtures.json"
    if marker.exists() and json.loads(marker.read_text()).get("spec") == spec:
        return {**json.loads(marker.read_text()), "seconds": 0.0, "reused": True}
    if hf_home.exists():
        shutil.rmtree(hf_home)
    info: dict[str, Any] = {"spec": spec}
    t0 = time.time()
    info["datasets"] = {
        name: str(path)
        for name, path in datasets.write_datasets(
            work / "hub-files", hf_home / "datasets", SIZES, seed
        ).items()
    }
    info["qwen"] = str(hub.write_qwen(hf_home, n_layers, seed))
    synth = yaml.safe_load(CONFIGS[0].read_text())["synth"]
    texts = [
        m["content"]
        for name, fn in ((datasets.SMOLTALK, datasets.smoltalk_rows),)
        for row in fn(SIZES["sft_train"], seed, "train")
        for m in row["messages"]
    ] + [p.read_text() for p in sorted((REPO / "config" / "prompts" / "styles").glob("*.yaml"))]
    info["generator"] = str(
        hub.write_generator(hf_home, texts, synth["model"], synth["temperature"], seed)
    )
    info["seconds"] = round(time.time() - t0, 1)
    marker.write_text(json.dumps(info, indent=1))
    return info


def _port(url: str) -> int:
    parsed = urlparse(url)
    if parsed.hostname != "127.0.0.1" or parsed.port is None:
        raise ValueError(f"config/rehearsal.yaml: {url} is not a 127.0.0.1 endpoint with a port")
    return parsed.port


class RssSampler(threading.Thread):
    """Peak RSS (process and children) of every process holding a file under `logs/` open."""

    def __init__(self, root_pid: int, logs: Path, every_s: float = 0.25):
        super().__init__(daemon=True)
        self.root = psutil.Process(root_pid)
        self.logs = str(logs.resolve())
        self.every_s = every_s
        self.peak: dict[str, float] = {}
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def run(self) -> None:
        while not self._halt.wait(self.every_s):
            try:
                procs = self.root.children(recursive=True)
            except psutil.Error:
                continue
            for p in procs:
                try:
                    logs = [f.path for f in p.open_files() if f.path.startswith(self.logs)]
                    if not logs:
                        continue
                    rss = p.memory_info().rss
                    for c in p.children(recursive=True):
                        try:
                            rss += c.memory_info().rss
                        except psutil.Error:
                            pass
                except psutil.Error:
                    continue
                key = os.path.relpath(logs[0], Path(self.logs).parent)
                self.peak[key] = max(self.peak.get(key, 0.0), rss / 2**20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=str(REPO / ".rehearsal"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--layers", type=int, default=2, help="decoder layers of the Qwen stand-in")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", nargs="*", default=TARGETS)
    parser.add_argument(
        "--resume", action="store_true", help="keep earlier results (run only what is missing)"
    )
    parser.add_argument("snakemake_args", nargs="*", help="passed on to snakemake (after --)")
    args = parser.parse_args(argv)

    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if not args.resume:  # a rehearsal runs every job; the offline hub is kept when unchanged
        for name in ("results", "logs", ".snakemake"):
            shutil.rmtree(work / name, ignore_errors=True)
    for name in ("config", ".venv-helm"):
        link = work / name
        if not link.exists() and (REPO / name).exists():
            link.symlink_to(REPO / name)
    t_start = time.time()
    print(f"rehearsal: building the offline hub in {work / 'hf'}", flush=True)
    fixtures = build_fixtures(work, args.layers, args.seed)
    print(f"rehearsal: fixtures ready in {fixtures['seconds']} s", flush=True)
    overlay = yaml.safe_load(CONFIGS[1].read_text())
    helm = {**yaml.safe_load(CONFIGS[0].read_text())["helm"], **overlay["helm"]}
    helm_data = work / helm["data_path"]
    if not args.resume or not (helm_data / "card.json").exists():  # kept: helm_run's input
        shutil.rmtree(helm_data, ignore_errors=True)
        write_helm_local_data(
            helm_data, helm["max_eval_instances"], args.seed, helm["mmlu_subjects"]
        )
    env = dict(
        os.environ,
        HF_HOME=str(work / "hf"),
        HF_DATASETS_CACHE=str(work / "hf" / "datasets"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS="1",
        OPENAI_API_KEY=API_KEY,
        NVIDIA_API_KEY=API_KEY,
        PYTHONPATH=os.pathsep.join(
            [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    )
    cmd = [
        str(Path(sys.executable).parent / "snakemake"),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--cores",
        str(args.cores),
        "--configfile",
        *map(str, CONFIGS),
        "--printshellcmds",
        *args.snakemake_args,
        "--",
        *args.targets,
    ]
    log_path = work / "rehearsal.log"
    judge_url, reward_url = overlay["judge"]["base_url"], overlay["win_rates"]["base_url"]
    slow = float(overlay["judge"]["timeout_s"]) + 2
    with (
        servers.FaultyAPI("judge", _port(judge_url), API_KEY, slow) as judge,
        servers.FaultyAPI("reward", _port(reward_url), API_KEY, slow) as reward,
        open(log_path, "w") as log,
    ):
        print(f"rehearsal: judge at {judge.url}, reward at {reward.url}", flush=True)
        print("rehearsal: " + " ".join(cmd), flush=True)
        t_run = time.time()
        proc = subprocess.Popen(
            cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        sampler = RssSampler(proc.pid, work / "logs")
        sampler.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            sys.stdout.write(line)
        rc = proc.wait()
        sampler.stop()
        run_s = time.time() - t_run
        api_counts = {"judge": dict(judge.counts), "reward": dict(reward.counts)}
    (work / "rss_peaks.json").write_text(json.dumps(sampler.peak, indent=1, sort_keys=True))

    summary = {
        "exit_status": rc,
        "snakemake_wall_s": round(run_s, 1),
        "total_wall_s": round(time.time() - t_start, 1),
        "fixtures_s": fixtures["seconds"],
        "cores": args.cores,
        "api_requests": api_counts,
    }
    (work / "rehearsal_run.json").write_text(json.dumps(summary, indent=1))
    paper = yaml.safe_load(CONFIGS[0].read_text())
    text, over = report.write_report(
        work, args.seed, summary, sampler.peak, paper, REPO / "config" / "prompts" / "styles"
    )
    print("\n" + text)
    if rc != 0:
        print(f"rehearsal: snakemake failed (exit {rc}); log: {log_path}", file=sys.stderr)
        return rc
    return 3 if over else 0


if __name__ == "__main__":
    sys.exit(main())
