# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs. torch is installed first and pinned
# (TORCH=...) so that pip takes the local CPU wheel instead of a multi-GB CUDA build;
# on a GPU machine use e.g. `make demo TORCH=torch`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test install docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,plot]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/skasd demo

test: install
	$(PY) -m pytest -q -rs --durations=15

docs: install
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

clean:
	rm -rf $(VENV) docs/_build
