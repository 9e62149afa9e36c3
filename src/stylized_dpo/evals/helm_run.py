"""helm-run on one model: HELM's local config folder, the offline inputs linked in, the command,
and its output made relocatable (the rule `helm_run`)."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from stylized_dpo.evals.helm import (
    SUITE,
    HelmConfig,
    HelmError,
    check_local_data,
    deployment_name,
    read_json,
    run_entries,
)
from stylized_dpo.io import atomic_path

CLIENT_CLASS = "stylized_dpo.evals.helm_client.LogprobHuggingFaceClient"
PLUGIN = "stylized_dpo.evals.helm_client"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def model_entries(
    model: str, model_dir: str | Path, config: HelmConfig, relative_to: str | Path | None = None
) -> tuple[dict, dict, dict]:
    """(model metadata, deployment, tokenizer config) entries of one local model directory."""
    path = Path(model_dir).resolve()
    where = str(path) if relative_to is None else os.path.relpath(path, Path(relative_to).resolve())
    model_config = read_json(path / "config.json")
    tok_config = read_json(path / "tokenizer_config.json")
    name = deployment_name(model)
    max_len = int(model_config.get("max_position_embeddings") or tok_config["model_max_length"])
    eos = tok_config.get("eos_token")
    eos = eos.get("content") if isinstance(eos, dict) else eos
    n_params = _count_parameters(path)
    metadata = {
        "name": name,
        "display_name": model,
        "description": f"Local checkpoint {path.name} (stylized-dpo)",
        "creator_organization_name": "stylized-dpo",
        "access": "open",
        "release_date": datetime.date(2025, 1, 1),  # HELM wants a date, not a string
        "tags": ["TEXT_MODEL_TAG", "FULL_FUNCTIONALITY_TEXT_MODEL_TAG"],
    }
    if n_params:
        metadata["num_parameters"] = n_params
    deployment = {
        "name": name,
        "model_name": name,
        "tokenizer_name": name,
        "max_sequence_length": max_len,
        "client_spec": {
            "class_name": CLIENT_CLASS,
            "args": {
                "pretrained_model_name_or_path": where,
                "device": config.device,
                "apply_chat_template": model not in config.plain_prompt_models,
                **({"batch_size": config.batch_size} if config.batch_size > 1 else {}),
            },
        },
    }
    tokenizer = {
        "name": name,
        "tokenizer_spec": {
            "class_name": "helm.tokenizers.huggingface_tokenizer.HuggingFaceTokenizer",
            "args": {"pretrained_model_name_or_path": where},
        },
        "end_of_text_token": eos or "",
        "prefix_token": "",
    }
    return metadata, deployment, tokenizer


def _count_parameters(path: Path) -> int | None:
    """Parameter count from the safetensors header (no torch needed); None if not readable."""
    total = 0
    files = sorted(path.glob("*.safetensors"))
    for file in files:
        with open(file, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        for key, info in header.items():
            if key == "__metadata__":
                continue
            count = 1
            for dim in info["shape"]:
                count *= dim
            total += count
    return total or None


def write_local_config(
    models: dict[str, str | Path],
    out_dir: str | Path,
    config: HelmConfig,
    relative_to: str | Path | None = None,
) -> Path:
    """HELM's `--local-path` folder (model_metadata/model_deployments/tokenizer_configs.yaml).

    With `relative_to` (the folder HELM runs in), model paths are written relative to it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = [model_entries(m, d, config, relative_to) for m, d in models.items()]
    files = {
        "model_metadata.yaml": {"models": [e[0] for e in entries]},
        "model_deployments.yaml": {"model_deployments": [e[1] for e in entries]},
        "tokenizer_configs.yaml": {"tokenizer_configs": [e[2] for e in entries]},
    }
    for name, content in files.items():
        with atomic_path(out / name) as tmp:
            tmp.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return out


def _link_tree(src: Path, dst: Path) -> None:
    """`dst` mirrors `src` with real folders and per-file links: HELM writes caches beside its
    inputs (NaturalQuestions' `*-instances.jsonl`), and pre-placed data may be read-only."""
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.suffix == ".lock":
            continue  # HELM's download locks (a copied benchmark_output has them): HELM opens
            # them for writing and refuses links
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path.resolve())


def helm_env(offline: bool, threads: int) -> dict[str, str]:
    """The environment of a HELM command: offline with local data, or HELM's own downloads.

    Offline, nltk's data is `nltk_data/` in the command's working directory.
    """
    env = dict(os.environ)
    if offline:
        env.update(OFFLINE_ENV)
        env["NLTK_DATA"] = "nltk_data"
    env["OMP_NUM_THREADS"] = str(threads)
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def make_relocatable(root: str | Path, prefixes: dict[str, str]) -> list[str]:
    """Rewrite absolute paths in the text files under `root` (HELM's logs and JSON echo them).

    `prefixes` maps an absolute folder to what replaces it (longest first); returns the files
    changed, relative to `root`.
    """
    base = Path(root)
    order = sorted(prefixes, key=len, reverse=True)
    changed = []
    for path in sorted(base.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if not any(prefix.encode() in data for prefix in order):
            continue
        text = data.decode("utf-8", errors="surrogateescape")
        for prefix in order:
            text = text.replace(prefix, prefixes[prefix])
        with atomic_path(path) as tmp:
            tmp.write_bytes(text.encode("utf-8", errors="surrogateescape"))
        changed.append(str(path.relative_to(base)))
    return changed


def relocate(out: Path, config: HelmConfig) -> None:
    """Absolute paths in `out` -> relative to `out`, or named by what they are: the working
    directory, HELM's environment (its warnings and tracebacks name its files)."""
    folders = [(Path.cwd(), "<workdir>"), (out, ".")]
    helm_env_dir = Path(config.executable("helm-run")).parent.parent
    if (helm_env_dir / "pyvenv.cfg").is_file():  # a virtual environment, not e.g. /usr
        folders.append((helm_env_dir, "<helm-env>"))
    prefixes = {}
    for folder, name in folders:
        prefixes[str(folder.absolute())] = name
        prefixes[str(folder.resolve())] = name
    make_relocatable(out, prefixes)


def run_helm_command(cmd: Sequence[str], env: dict[str, str], log: Path, cwd: Path) -> float:
    """Run a HELM command in `cwd`, its output appended to `log`; returns the wall time."""
    print("$", " ".join(cmd), flush=True)
    start = time.monotonic()
    with open(log, "a", encoding="utf-8") as f:
        proc = subprocess.run(
            cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, check=False
        )
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        raise HelmError(
            f"{cmd[0]} exited with {proc.returncode}; last lines of {log}:\n" + "\n".join(tail)
        )
    return elapsed


def run_model(
    model: str,
    model_dir: str | Path,
    data_dir: str | Path | None,
    out_dir: str | Path,
    config: HelmConfig,
    threads: int = 1,
) -> dict[str, Any]:
    """helm-run on one model; output in `out_dir` (config/, benchmark_output/runs/, helm-run.log).

    `data_dir` holds HELM's files in its download layout (`write_helm_scenarios` for the world,
    or pre-placed ones for `data: local`; see `local_data_files`), run offline; None lets HELM
    download the real benchmarks and perturbation files itself. helm-run runs in `out_dir` with
    relative paths, the inputs linked in and removed afterwards, so the output does not name
    the machine's folders. Returns a small record (run names, wall time, requests) also
    written to `out_dir/run.json`.
    """
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    data = Path(data_dir) if data_dir is not None else None
    if data is not None:
        check_local_data(data, config)
    out.mkdir(parents=True)
    bench = out / "benchmark_output"
    linked = [bench / "scenarios", bench / "perturbations", out / "nltk_data"]
    if data is not None:
        _link_tree(data / "scenarios", linked[0])
        _link_tree(data / "perturbations", linked[1])
        # nltk refuses files that resolve outside NLTK_DATA; punkt's parameters are small.
        shutil.copytree(data / "nltk_data", linked[2])
    write_local_config({model: model_dir}, out / "config", config, relative_to=out)
    entries = run_entries(model, config)
    cmd = [
        config.executable("helm-run"),
        "--run-entries", *entries,
        "--suite", SUITE,
        "--max-eval-instances", str(config.max_eval_instances),
        "--num-train-trials", str(config.num_train_trials),
        "--local-path", "config",
        "--output-path", "benchmark_output",
        "--plugins", PLUGIN,
        "--num-threads", str(config.num_threads),
        "--disable-cache",
        "--exit-on-error",
    ]  # fmt: skip
    log = out / "helm-run.log"
    seconds = run_helm_command(cmd, helm_env(data is not None, threads), log, cwd=out)
    for path in linked:
        if path.exists():
            shutil.rmtree(path)  # inputs (and HELM's caches of them), not results
    relocate(out, config)
    runs = [p.name for p in list_runs(bench / "runs" / SUITE)]
    if len(runs) != len(entries):
        raise HelmError(f"expected {len(entries)} runs in {bench / 'runs' / SUITE}, got {runs}")
    n_requests = sum(_count_requests(bench / "runs" / SUITE / run) for run in runs)
    record = {
        "model": model,
        "runs": runs,
        "entries": entries,
        "seconds": round(seconds, 1),
        "requests": n_requests,
        "requests_per_s": round(n_requests / seconds, 3) if seconds else None,
    }
    with atomic_path(out / "run.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"helm-run {model}: {len(runs)} runs in {seconds:.1f} s", flush=True)
    return record


def _count_requests(run: Path) -> int:
    """Requests HELM sent for one run (`scenario_state.json`'s request states)."""
    state = read_json(run / "scenario_state.json")
    return len(state.get("request_states", []))


def list_runs(suite: Path) -> list[Path]:
    """A suite's run folders (HELM also keeps an `eval_cache/` folder there)."""
    return sorted(p for p in suite.iterdir() if (p / "run_spec.json").is_file())
