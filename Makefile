# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs: the demo only skasd with plotting, the tests
# also the dev extras (Sphinx, Dask, Accelerate, peers, pytest-xdist). torch is installed first
# and pinned (TORCH=...) so that pip takes the local CPU wheel instead of a multi-GB CUDA
# build; on a GPU machine use e.g. `make demo TORCH=torch`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python
# pytest workers: one per CPU, at most 4 (each holds torch and a few models: ~1 GB apiece).
# `make test JOBS=1` runs the suite in one process.
JOBS ?= $(shell $(PYTHON) -c "import os; print(max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1)))")

.PHONY: demo test install install-dev docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[plot]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e ".[dev,plot]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/skasd demo

test: install-dev
	$(PY) -m pytest -q -rs --durations=15 -n $(JOBS)

docs: install-dev
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

clean:
	rm -rf $(VENV) docs/_build
