# Quickstart: `make demo` (set up, then run the demo) and `make test` (set up, then pytest).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test clean

$(STAMP): requirements.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m autoseed_jax.main --config experiments/configs/demo.py --workdir runs/demo

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf runs .pytest_cache
