# Both targets work on a fresh machine with Python 3.11 and pip: they create .venv when missing.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
CORE   := $(VENV)/.installed-core
STAMP  := $(VENV)/.installed

.PHONY: demo test install bench bench-experiments bench-tables clean

# the demo needs only the core dependencies; the tests add pytest, ruff and the optional integrations they exercise
$(CORE): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch pinned first so pip never resolves a CUDA build
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e .
	@touch $(CORE)

$(STAMP): $(CORE)
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(CORE)
	$(VENV)/bin/trainwell demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/bench_tabular.py

bench-experiments: $(STAMP)
	$(PY) benchmarks/bench_experiments.py

# the real-tables benchmark needs the bench extra (torch stays at the pinned build)
bench-tables: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]" "torch==2.13.0"
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_tables.py $(ARGS)

clean:
	rm -rf $(VENV) runs reports
