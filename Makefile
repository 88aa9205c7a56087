# lf-wrap: `make demo` runs the built-in demo end to end, `make test` runs the tests.
# Both set everything up first (`make setup`), from a fresh clone, with no network
# beyond the package registry.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
LFW    := $(VENV)/bin/lf-wrap
STAMP  := $(VENV)/.lf-wrap-installed

# Project file for finetune/export/render (default: the demo's settings).
CONFIG ?=
CONFIG_ARG := $(if $(CONFIG),--config $(CONFIG),)

DEMO_MODEL   := models/tiny-qwen2
DEMO_DATA    := datasets/magic_conch.json
DATASET_DIR  := data

.PHONY: setup test lint demo render clean

## setup: create .venv and install lf-wrap with everything its tests need (idempotent)
setup: $(STAMP)

# torch goes in first and pinned: `torch==2.13.0` resolves to the CPU wheel on these
# machines (a few hundred MB); anything unpinned that pulls torch in would fetch a
# multi-GB CUDA build.  The rest comes from an exact lock file.
$(STAMP): pyproject.toml requirements/dev.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

## test: the whole test suite (CPU only; gpu/network tests are opt-in markers)
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

## lint: ruff
lint: setup
	$(PY) -m ruff check lf_wrap tests
	$(PY) -m ruff format --check lf_wrap tests

## demo: tiny model -> validate -> register -> render the LLaMA-Factory configs
demo: setup
	$(LFW) model tiny $(DEMO_MODEL)
	$(LFW) data validate $(DEMO_DATA)
	$(LFW) data register $(DEMO_DATA) --name magic_conch --dataset-dir $(DATASET_DIR)
	$(LFW) data stats $(DEMO_DATA) --tokenizer $(DEMO_MODEL) --cutoff-len 256
	$(LFW) render train $(CONFIG_ARG)
	$(LFW) render export $(CONFIG_ARG)
	@echo "demo done: model in $(DEMO_MODEL)/, dataset registered in $(DATASET_DIR)/dataset_info.json"

## render: print the train YAML for CONFIG (default: demo settings)
render: setup
	$(LFW) render train $(CONFIG_ARG)

clean:
	rm -rf $(DEMO_MODEL) $(DATASET_DIR) runs .pytest_cache
