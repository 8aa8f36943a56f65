# Entry points named in README.md. `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data/ferplus/ferplus.tar.gz

.PHONY: setup run test lint benchmark

# torch==2.13.0 first: it is the CPU build; any other torch request pulls a multi-GB CUDA build.
# [dev] is every extra (ferkit[all]) and the test tools.
$(BIN)/ferkit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/ferkit

run: setup
	$(BIN)/ferkit app

# Every test, the slow ones (two-process DDP, the notebook) included; plain `pytest` skips those.
test: setup
	$(BIN)/python -m pytest -m "slow or not slow"

# ruff's rules and mypy's settings are in pyproject.toml ([tool.ruff], [tool.mypy])
lint: setup
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/mypy src

benchmark: setup
	$(BIN)/python benchmarks/train_throughput.py
