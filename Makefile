# The two commands a fresh machine needs: `make demo` and `make test`. Everything is installed into
# .venv by these rules; llama-cpp-python builds from source the first time (about 7 minutes on 2 cores).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pantheon-installed

# llama.cpp is built portable, never for "this CPU" (GGML_NATIVE): a native build on a CPU that lists
# AMX dies with SIGILL at its first decode (the AMX tile kernels fault where the kernel or hypervisor
# does not grant AMX state), and pip's wheel cache hands a wheel built on one machine to another. So:
# x86-64-v3 (AVX2, FMA, F16C, BMI2), no AVX-512, no AMX; built here with no wheel cache, into a
# wheelhouse keyed by version and flags, and probed (load + decode) before the install counts.
# Other flags: CMAKE_ARGS="..." make install (kept apart by the key). A CUDA build: make install GPU=cuda.
LLAMA_CPP_VERSION := 0.3.36
PORTABLE_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
# On a CPU known to run AVX-512 (bench/bench_build.py: prompts 1.7x faster than portable on CI's Xeon),
# opt in with CPU=avx512; still no AMX, and the probe below refuses a build this CPU cannot run.
AVX512_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON \
	-DGGML_AVX_VNNI=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
CPU_CMAKE_ARGS := $(if $(filter avx512,$(CPU)),$(AVX512_CMAKE_ARGS),$(PORTABLE_CMAKE_ARGS))
LLAMA_CMAKE_ARGS := $(or $(CMAKE_ARGS),$(CPU_CMAKE_ARGS)) $(if $(filter cuda,$(GPU)),-DGGML_CUDA=on)
LLAMA_KEY := $(shell printf '%s' '$(LLAMA_CPP_VERSION) $(strip $(LLAMA_CMAKE_ARGS))' | sha256sum | cut -c1-12)
WHEELHOUSE := $(VENV)/llama-cpp/$(LLAMA_KEY)
LLAMA_STAMP := $(WHEELHOUSE)/.installed

.PHONY: install test demo lint bench bench-build clean

install: $(STAMP)

$(LLAMA_STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	ls $(WHEELHOUSE)/llama_cpp_python-*.whl >/dev/null 2>&1 || CMAKE_ARGS='$(strip $(LLAMA_CMAKE_ARGS))' \
		$(BIN)/python -m pip wheel --quiet --no-cache-dir --no-deps --no-binary llama-cpp-python \
		--wheel-dir $(WHEELHOUSE) llama-cpp-python==$(LLAMA_CPP_VERSION)
	$(BIN)/python -m pip install --quiet --no-index --no-deps --force-reinstall $(WHEELHOUSE)/llama_cpp_python-*.whl
	rm -f $(VENV)/llama-cpp/*/.installed $(STAMP)
	touch $@

$(STAMP): pyproject.toml trainer/pyproject.toml Makefile $(LLAMA_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[llm,dev]'
	# The trainer (torch, transformers, peft, gguf) is its own package. torch is pinned to the CPU build
	# this image carries; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e trainer
	# The night refuses to run commands without its bubblewrap sandbox: say so now, not at night.
	$(BIN)/python -c "from pantheon_git.tools.sandbox import sandbox_problem as p; print(p() or 'sandbox: ok')"
	# Load the embedded model and decode a few tokens in a child process: a build this CPU cannot run
	# fails here, in one line that says what to rebuild, not at the first night.
	$(BIN)/python -m pantheon_git.runtime.probe
	touch $@

test: $(STAMP)
	# `git pantheon --help` is tested end to end through man(1), and steps and votes are signed with
	# ssh-keygen: install them where missing and we may (CI runs as root).
	command -v man >/dev/null || (test "$$(id -u)" = 0 && apt-get update -qq && apt-get install -y -qq man-db >/dev/null) || true
	command -v ssh-keygen >/dev/null || (test "$$(id -u)" = 0 && apt-get update -qq && apt-get install -y -qq openssh-client >/dev/null) || true
	$(BIN)/python -m pytest

# mypy reads [tool.mypy] in pyproject.toml (pantheon_git/ strict, trainer/ checked); `make test` runs it too
# (tests/test_types.py). Cached in .mypy_cache: about 35 s the first time, 2 s after.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m mypy

bench: $(STAMP)
	$(BIN)/python bench/bench_bookkeeping.py
	$(BIN)/python bench/bench_queue.py
	$(BIN)/python bench/bench_decoding.py
	$(BIN)/python bench/bench_dataset.py
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_agent.py --limit 40

# Portable vs AVX-512 vs native llama.cpp on this machine (three more builds: about 20 minutes on 2 cores).
bench-build: $(STAMP)
	$(BIN)/python bench/bench_build.py --rounds 3

demo: $(STAMP)
	$(BIN)/python -m pantheon_git.ops.demo --dir build/demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
