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

# Two pytest workers on the 2-core machines CI uses (a file's tests stay in one worker,
# so module fixtures are shared); TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2

test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf runs .pytest_cache
