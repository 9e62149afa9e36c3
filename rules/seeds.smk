# Seeds (config `seeds`): each entry s reruns what depends on the training seed (pretraining,
# SFT, reference log-probs, DPO, and every evaluation and table of a model) with seed
# `seed + s`, as a branch of its own; the world, the data, the style rewrites and the tokenizer
# are built once from `seed`. The first seed keeps the paths of a one-seed run; each later one
# writes under results/seeds/<s>/ and logs/seeds/<s>/: the `seeddir` wildcard ("" or
# "seeds/<s>/") of every per-seed rule, put in place by `per_seed`. The one place that builds
# per-seed paths (rules/report.smk's tests include it alone).
from snakemake.io import apply_wildcards

from stylized_dpo.report.common import run_label

SEEDS = list(config["seeds"])
SEED_DIRS = {("seeds/%d/" % s if i else ""): s for i, s in enumerate(SEEDS)}
# A hub model is fetched once: its HELM runs do not depend on the seed either.
SEED_FREE_MODELS = [] if config["base_model"]["source"] == "pretrain" else ["base"]


wildcard_constraints:
    # may be empty (the first seed): an empty constraint would mean "anything"
    seeddir="(?:%s)" % "|".join(SEED_DIRS),


def per_seed(path, seeddir="{seeddir}"):
    """`path` (results/..., logs/...) in one seed's branch: `seeddir` after the top folder. By
    default the wildcard itself, for the patterns of per-seed rules and their inputs."""
    top, rest = path.split("/", 1)
    return f"{top}/{seeddir}{rest}"


def every_seed(paths, **wildcards):
    """Each path (a per-seed rule's pattern or output, its other `wildcards` given) in every
    seed's branch, the first seed's first. A rule's own output keeps its flags: a runpod run
    maps it to storage, which expand() refuses and str() would turn into a local copy's path.
    """
    paths = list(paths)
    return [
        (
            path.apply_wildcards({"seeddir": d, **wildcards})
            if hasattr(path, "apply_wildcards")
            else apply_wildcards(path, {"seeddir": d, **wildcards})
        )
        for d in SEED_DIRS
        for path in paths
    ]


def run_seed(wildcards):
    """The training seed of a per-seed job (a job without the wildcard: the first seed's)."""
    return config["seed"] + SEED_DIRS[wildcards.get("seeddir", "")]


def seed_label(wildcards):
    """The run label of one seed's table or figure: a later seed's names its training seed
    (the first seed's files are a one-seed run's, label included)."""
    label = run_label(config)
    if not wildcards.seeddir:
        return label
    return f"{label} Training seed {run_seed(wildcards)}.".lstrip()


# The run label of the tables and figures across seeds.
SEEDS_LABEL = (
    f"{run_label(config)} Seeds {', '.join(map(str, SEEDS))} "
    f"(training seed {config['seed']} + each)."
).lstrip()


def model_seeddir(name, seeddir):
    """The branch that holds a model of seed branch `seeddir` (a fetched base model: the
    first, its one copy)."""
    return "" if name in SEED_FREE_MODELS else seeddir


def model_dir(name, seeddir):
    return per_seed(f"results/models/{name}", model_seeddir(name, seeddir))
