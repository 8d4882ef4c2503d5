# openimagen: everything a fresh machine needs lives here.
#   make demo   set up, then generate a grid offline with the shipped default model
#   make test   set up, then run the test suite (CPU only, < 15 min on 2 cores)
SHELL := /bin/bash
PY    ?= python3
VENV  := .venv
VPY   := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEB_PACKAGES := fonts-noto-color-emoji openclipart-png unicode-data chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_OUT ?= out/demo.png

.PHONY: setup venv debs demo test test-fast bench gpu-bundle gpu-bench-wheels clean

setup: $(STAMP) debs

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	# The CPU wheel of PyTorch lies on disk; a bare `torch` requirement would pull a multi-GB CUDA build.
	$(VPY) -c "import torch" 2>/dev/null || $(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages: data for the data builders (emoji font, clip art) and Chromium for the web page test.
debs:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

test: setup
	$(VPY) -m pytest -q -n auto --dist loadfile tests

test-fast: setup
	$(VPY) -m pytest -q -n auto --dist loadfile -m "not slow" tests

DEMO_PROMPTS := "a red circle above a blue square" "two green stars" "a big yellow triangle" \
  "a blue square and a black circle" "grinning face" "red heart" "pizza" "rocket"

# The shipped default cascade (src/openimagen/models/default, docs/MODEL_CARD.md); offline, CPU. Generation needs
# no Debian data packages (only data building, training and the tests do), so the demo installs none and needs no root.
demo: venv
	$(VENV)/bin/openimagen generate $(DEMO_PROMPTS) --seed 0 -o $(DEMO_OUT)
	@echo "Demo grid of 8 prompts: $(abspath $(DEMO_OUT)) (the default model: docs/MODEL_CARD.md)"
	@echo "Run openimagen yourself with $(VENV)/bin/openimagen, or after: . $(VENV)/bin/activate"

# Peer benchmarks run in their own venv so imagen-pytorch/diffusers never touch .venv (see docs/BENCHMARKS.md).
.venv-bench/.installed: benchmarks/requirements-bench.txt pyproject.toml
	test -x .venv-bench/bin/python || $(PY) -m venv .venv-bench
	.venv-bench/bin/pip install -q torch==2.13.0
	.venv-bench/bin/pip install -q -e ".[onnx]" -r benchmarks/requirements-bench.txt
	touch $@

bench: .venv-bench/.installed
	.venv-bench/bin/python benchmarks/train_throughput.py
	.venv-bench/bin/python benchmarks/sample_speed.py

# The default model's GPU recipe (docs/TRAINING.md): what a short, offline GPU window needs, under 64 MiB with the
# repository, in the ignored folder gpu-bundle/. The GPU-side command is in docs/TRAINING.md.
gpu-bundle: setup
	$(VPY) -m openimagen.gpu bundle gpu-bundle

# The GPU sampling benchmark (issue 15, point 5; docs/BENCHMARKS.md, "On a GPU"): the wheels the GPU machine lacks
# (pydantic's, diffusers and importlib_metadata for CPython 3.12) into the ignored folder gpu-bench/wheels.
GPU_BENCH_PINS = diffusers==0.42.1 importlib_metadata==10.2.0 zipp==4.1.2
gpu-bench-wheels: setup
	$(VPY) -c "from openimagen.gpu.bundle import download_wheels; download_wheels(__import__('pathlib').Path('gpu-bench/wheels'), extra='$(GPU_BENCH_PINS)'.split())"
	@ls gpu-bench/wheels

clean:
	rm -rf runs out .pytest_cache
