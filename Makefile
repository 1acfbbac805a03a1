# The two commands a fresh machine needs: `make demo` and `make test`. Everything is installed into
# .venv by these rules; llama-cpp-python builds from source the first time (about 10 minutes on
# 2 cores; pip caches the wheel). For a CUDA build: CMAKE_ARGS="-DGGML_CUDA=on" make install.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pantheon-installed

.PHONY: install test demo lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml trainer/pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[llm,dev]'
	# The trainer (torch, transformers, peft, gguf) is its own package. torch is pinned to the CPU build
	# this image carries; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e trainer
	# The night refuses to run commands without its bubblewrap sandbox: say so now, not at night.
	$(BIN)/python -c "from pantheon_git.tools.sandbox import sandbox_problem as p; print(p() or 'sandbox: ok')"
	touch $@

test: $(STAMP)
	# `git pantheon --help` is tested end to end through man(1), and steps and votes are signed with
	# ssh-keygen: install them where missing and we may (CI runs as root).
	command -v man >/dev/null || (test "$$(id -u)" = 0 && apt-get update -qq && apt-get install -y -qq man-db >/dev/null) || true
	command -v ssh-keygen >/dev/null || (test "$$(id -u)" = 0 && apt-get update -qq && apt-get install -y -qq openssh-client >/dev/null) || true
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/bench_bookkeeping.py
	$(BIN)/python bench/bench_queue.py
	$(BIN)/python bench/bench_decoding.py
	$(BIN)/python bench/bench_dataset.py
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_agent.py --limit 40

demo: $(STAMP)
	$(BIN)/python -m pantheon_git.ops.demo --dir build/demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
