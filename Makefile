# Every target bootstraps itself: a fresh machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench bench-quick bench-encoded clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf demo-ws
	CILINK_SECRET=$${CILINK_SECRET:-demo-secret-not-for-production} $(BIN)/cilink demo demo-ws --people 2000 --seed 1

# the suite also runs the Spark backend test (tests/test_spark_backend.py), so it installs the spark extra;
# that test skips, saying why, only where Java 17+ is missing
$(VENV)/.test: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $(VENV)/.test

test: $(VENV)/.test
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

$(VENV)/.bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,spark]'
	touch $(VENV)/.bench

bench-quick: $(VENV)/.bench
	$(BIN)/python -m benchmarks --quick

bench: $(VENV)/.bench
	$(BIN)/python -m benchmarks

# issue 19: F1 of the demo at 100k people all plaintext, workforce board encoded, all partners encoded
bench-encoded: $(VENV)/.bench
	$(BIN)/python -m benchmarks.encoded

clean:
	rm -rf $(VENV) demo-ws .pytest_cache
