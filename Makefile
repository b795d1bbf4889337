# The two README commands: `make demo` and `make test`. Each creates or reuses .venv in the repo,
# installs minipsp with what it needs, and runs. Nothing else has to be installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test test-fast lint bench notebooks clean fuzz gpu-check

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Stamps re-install when the project's metadata changes.
$(VENV)/.core: pyproject.toml setup.py | $(VENV)/bin/python
	$(PIP) -e .
	touch $@

# The mpi extra too, so that the distributed tests (tests/distributed, 2 ranks via mpiexec) run.
$(VENV)/.test: pyproject.toml setup.py | $(VENV)/bin/python
	$(PIP) -e ".[test,mpi]"
	touch $(VENV)/.core $@

demo: $(VENV)/.core
	$(PY) -m minipsp.demo

# MINIPSP_SOLUTIONS=1: the notebooks' exercise checks, left unsolved, run on the reference solutions.
test: $(VENV)/.test
	MINIPSP_SOLUTIONS=1 $(PY) -m pytest -q --nbmake --nbmake-timeout=600 tests notebooks

lint: $(VENV)/.test
	$(VENV)/bin/ruff check minipsp kernels tests benchmarks fuzz setup.py

bench: $(VENV)/.test
	$(PY) -m benchmarks.ops

# On a GPU machine (no network; CuPy, numba-cuda, a CUDA torch, pytest in python3; no venv): tests, a GPU vs
# CPU training run and the GPU benchmarks in one call, <= 8 min, one report in $OUT or benchmarks/results/.
gpu-check:
	$(PYTHON) -m benchmarks.gpu_check

# Coverage-guided fuzzing of minipsp.load (`make test` runs 45 s of it); what it finds is in fuzz/findings/.
FUZZ_SECONDS ?= 600
fuzz: $(VENV)/.test
	$(PIP) -e ".[test,fuzz]"
	$(PY) fuzz/make_corpus.py fuzz/corpus
	mkdir -p fuzz/findings
	$(PY) fuzz/fuzz_load.py fuzz/corpus -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=30 \
		-artifact_prefix=fuzz/findings/ -print_final_stats=1

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
