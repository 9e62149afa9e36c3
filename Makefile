# Two commands on a fresh machine: `make run` and `make test`.
# Two environments: .venv (workflow, training, evaluation, tests) and .venv-helm (crfm-helm, whose
# pins conflict with the main stack). Versions are locked in requirements/*.lock.
PYTHON ?= python3
VENV := .venv
HELM_VENV := .venv-helm
CORES ?= 2
export OMP_NUM_THREADS ?= 1

.PHONY: run test lint env clean rehearsal

env: $(VENV)/.installed $(HELM_VENV)/.installed

$(VENV)/.installed: requirements/run.txt requirements/test.txt requirements/cluster.txt requirements/main.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements/test.txt -c requirements/main.lock
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# torchvision comes in through crfm-helm's requirements but its PyPI build does not match the CPU
# torch here and breaks `import transformers`; HELM only needs it for image metrics.
$(HELM_VENV)/.installed: requirements/helm.txt requirements/helm.lock pyproject.toml
	$(PYTHON) -m venv $(HELM_VENV)
	$(HELM_VENV)/bin/pip install -q -r requirements/helm.txt -c requirements/helm.lock
	$(HELM_VENV)/bin/pip uninstall -q -y torchvision
	$(HELM_VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	touch $@

run: env
	$(VENV)/bin/snakemake --cores $(CORES)

test: env
	$(VENV)/bin/pytest -q

# config/paper.yaml's DAG offline on this CPU at the paper's shapes (stylized_dpo.rehearsal):
# a hub cache with Qwen2.5-0.5B's config (2 layers, random weights) and the real Qwen2.5
# tokenizer, the hub datasets in the datasets cache, local judge and reward servers, HELM's
# files pre-placed for `helm.data: local` (so both environments). Writes .rehearsal/ (report:
# .rehearsal/rehearsal_report.md); exits non-zero when a job fails or exceeds its memory.
rehearsal: env
	PYTHONPATH=$(CURDIR)/src $(VENV)/bin/python -m stylized_dpo.rehearsal.run --cores $(CORES)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests workflow benchmarks
	$(VENV)/bin/ruff format --check src tests workflow benchmarks
	$(VENV)/bin/snakefmt --check Snakefile rules
	$(VENV)/bin/snakemake --lint

clean:
	rm -rf results .snakemake logs .rehearsal
