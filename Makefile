# The two set-up commands: `make run` (main job on the embedded default) and `make test`.
# Each creates or updates the project virtualenv by itself; a second call with nothing
# changed skips the install.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is pinned here as well as in pyproject: installing it first from this exact version
# keeps pip from pulling several GB of CUDA wheels on CPU-only machines.
TORCH_PIN := torch==2.13.0
export MLOPS_HOME ?= $(CURDIR)/.mlops
DATA := $(MLOPS_HOME)/data/crm_leads.parquet
CONFIG ?= configs/crm_leads.yaml

.PHONY: run test install lint bench clean-home

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(DATA): | $(STAMP)
	$(BIN)/mlops data generate --out $(DATA)

run: $(STAMP) $(DATA)
	$(BIN)/mlops run --config $(CONFIG)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean-home:
	rm -rf $(MLOPS_HOME)
