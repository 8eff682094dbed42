# Two entry points for a fresh machine with only Python and git:
#   make repro   -> set up .venv (if missing) and run the whole DVC pipeline on params.yaml
#   make test    -> set up .venv (if missing) and run the test suite
# GPU training: make gpu-setup (.venv-cuda: CUDA torch, apart from .venv and from vLLM's environment),
# then make gpu-check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION := 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
# The CUDA build for the GPU environment: any suffix PyTorch publishes $(TORCH_VERSION) under
# (https://pytorch.org/get-started/previous-versions/), e.g. `make gpu-setup TORCH_CUDA=cu130`.
TORCH_CUDA ?= cu128
GPU_VENV := .venv-cuda
GPU_BIN := $(GPU_VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup repro test test-slow clean-venv gpu-setup gpu-check

# torch first, pinned to its CPU build ("+cpu": never a CUDA wheel): from a local wheel when pip can find
# one offline (e.g. a PIP_FIND_LINKS folder), otherwise from PyTorch's CPU wheel index.
$(BIN)/.installed: requirements-cpu.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	if $(BIN)/python -m pip install --quiet --dry-run --ignore-installed --no-deps --no-index "torch==$(TORCH_VERSION)+cpu" \
	     >/dev/null 2>&1; then \
	  $(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)+cpu"; \
	else \
	  $(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)+cpu" --index-url $(TORCH_CPU_INDEX); \
	fi
	$(BIN)/python -m pip install --quiet -r requirements-cpu.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

setup: $(BIN)/.installed

repro: setup
	test -d .git || git init --quiet
	dvc repro

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

clean-venv:
	rm -rf $(VENV)

# The GPU training environment: the same pins with PyTorch's CUDA build of torch.
$(GPU_BIN)/.installed: requirements-cpu.txt pyproject.toml
	test -x $(GPU_BIN)/python || $(PYTHON) -m venv $(GPU_VENV)
	$(GPU_BIN)/python -m pip install --quiet --upgrade pip
	$(GPU_BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)" \
	  --index-url https://download.pytorch.org/whl/$(TORCH_CUDA)
	$(GPU_BIN)/python -m pip install --quiet -r requirements-cpu.txt
	$(GPU_BIN)/python -m pip install --quiet --no-deps -e .
	$(GPU_BIN)/python -m pip check
	touch $@

gpu-setup: $(GPU_BIN)/.installed

gpu-check: gpu-setup
	$(GPU_BIN)/python benchmarks/gpu_check.py
