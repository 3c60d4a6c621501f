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

.PHONY: run test test-fast install lint docs bench bench-smoke clean-home

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

# Two pytest workers (pytest-xdist), each test file on one of them (its module-scoped servers and stacks
# stay in one process): most of a server test is waiting for a subprocess, so two run in about 60% of the
# time of one. PYTEST_WORKERS=1 runs in this process, as plain `pytest` does.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL = $(if $(filter-out 1,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile,)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_PARALLEL)

# The unit tests only (pure code, no servers): the quick loop while editing.
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The documentation site, into site/. --strict: a broken link or anchor, a missing page or a config field
# without a description fails the build. NO_MKDOCS_2_WARNING silences mkdocs-material's banner about MkDocs 2.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

# Every benchmark at its measured sizes (tens of minutes on 2 cores); bench-smoke: each at tiny sizes.
bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

bench-smoke: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b --smoke || exit 1; done

clean-home:
	rm -rf $(MLOPS_HOME)
