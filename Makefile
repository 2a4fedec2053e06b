# edfast's entry points. `make test` works on a fresh machine: it creates .venv, installs
# everything, builds the extension (CUDA sources too where nvcc is present) and runs pytest
# and the C++ tests of csrc/core.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NVCC := $(shell command -v nvcc 2>/dev/null)
CUDA_HOME ?= $(if $(wildcard /usr/local/cuda/bin/nvcc),/usr/local/cuda,$(patsubst %/bin/nvcc,%,$(NVCC)))
FORCE_CUDA ?= $(if $(NVCC),1,0)
TORCH_CUDA_ARCH_LIST ?= 9.0
MAX_JOBS ?= 2
# pipefail: a failing command piped into tee fails the recipe.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

BUILD_ENV := CUDA_HOME=$(CUDA_HOME) FORCE_CUDA=$(FORCE_CUDA) TORCH_CUDA_ARCH_LIST="$(TORCH_CUDA_ARCH_LIST)" MAX_JOBS=$(MAX_JOBS)

.PHONY: venv build demo test test-python test-cpp gpu-check bench-large-batch clean

$(VENV)/.installed: requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

build: venv
	$(BUILD_ENV) $(PY) -m pip install -q -e . --no-build-isolation --no-deps

# The main job: train the 8gaussians toy on the CPU and draw it (out/demo/density.png).
demo: build
	$(VENV)/bin/edfast train toy --dataset 8gaussians --device cpu --out out/demo

test-python: build
	EDFAST_EXPECT_CUDA=$(FORCE_CUDA) $(PY) -m pytest -q

test-cpp:
	cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=Release > /dev/null
	cmake --build build/cmake -j $(MAX_JOBS)
	ctest --test-dir build/cmake --output-on-failure -j $(MAX_JOBS)

test: test-python test-cpp

# For a lent GPU machine (torch preinstalled, no network): build in place for the local GPU
# against the installed torch, run everything on CUDA, benchmark, and run the kernels' CUDA
# tests under compute-sanitizer (memcheck; racecheck once a kernel uses shared memory: none
# does yet, the reductions are warp shuffles). Results land in bench/results/.
GPU_PY ?= python3
gpu-check:
	CUDA_HOME=$(CUDA_HOME) FORCE_CUDA=1 MAX_JOBS=16 TORCH_CUDA_ARCH_LIST="$$($(GPU_PY) -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')" \
		$(GPU_PY) setup.py build_ext --inplace
	mkdir -p bench/results
	EDFAST_EXPECT_CUDA=1 PYTHONPATH=$(CURDIR) $(GPU_PY) -m pytest -q 2>&1 | tee bench/results/gpu-check-tests.txt
	PYTHONPATH=$(CURDIR) $(GPU_PY) bench/bench_core_ops.py --devices cuda
	PYTHONPATH=$(CURDIR) $(GPU_PY) bench/run.py --suite quick --device cuda
	PYTHONPATH=$(CURDIR) compute-sanitizer --tool memcheck --error-exitcode 1 \
		$(GPU_PY) -m pytest -q -x -k cuda tests/test_contrastive.py tests/test_perturb.py \
		2>&1 | tee bench/results/gpu-check-memcheck.txt

# Large-batch training measured (issue 12): `edfast train toy` at B=65536 vs 1024, 1 vs 2
# processes; writes bench/results/large-batch-<date>.md and .csv (5-10 minutes on 2 cores).
bench-large-batch:
	PYTHONPATH=$(CURDIR) $(PY) bench/large_batch.py

clean:
	rm -rf build edfast/*.so *.egg-info
