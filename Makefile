# Two commands on a fresh machine: `make demo` (a verification end to end) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench

$(BIN)/verifier: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/verifier

demo: install
	$(BIN)/verifier demo

lint: install
	$(BIN)/ruff check verifier tests benchmarks
	$(BIN)/ruff format --check verifier tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python benchmarks/bench_dcap.py
	$(BIN)/python benchmarks/bench_verdict.py
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_memory.py
	$(BIN)/python benchmarks/bench_reuse.py
	$(BIN)/python benchmarks/bench_proxy.py
