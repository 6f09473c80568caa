# Every target that runs code first makes .venv, installs the project with its
# dev extras and generates the stubs; each step is redone only when its inputs change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
MUTMUT := $(VENV)/.mutmut-installed
PROTO := protos/chunkwise/v1/streaming.proto
STUBS := protos/chunkwise/v1/streaming_pb2.py protos/chunkwise/v1/streaming_pb2_grpc.py
ARGS ?=

.PHONY: setup serve test protos bench lint fuzz soak mutate interop clean

setup: $(INSTALLED) $(STUBS)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,cli]'
	touch $@

$(STUBS) &: $(PROTO) $(INSTALLED)
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=protos --pyi_out=protos \
		--grpc_python_out=protos $(PROTO)

protos: $(INSTALLED)
	rm -f $(STUBS)
	$(MAKE) $(STUBS)

serve: setup
	$(BIN)/python -m server $(ARGS)

test: setup
	$(BIN)/python -m pytest $(ARGS)

bench: setup
	$(BIN)/python -m bench $(ARGS)

fuzz: setup
	CHUNKWISE_HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/test_engine_fuzz.py $(ARGS)

# A longer soak and a flood of a million ids; prints the figures bench/RESULTS.md records.
soak: setup
	CHUNKWISE_SOAK_SECONDS=300 CHUNKWISE_FLOOD_IDS=1000000 \
		$(BIN)/python -m pytest -s tests/test_soak.py tests/test_flood.py $(ARGS)

$(MUTMUT): $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,cli,mutate]'
	touch $@

# Mutation testing of the engine, the store, the wire encoder and the client's JSON builder (slow: see
# tests/MUTATION.md), from a fresh mutants/ each time so no verdict predates the tests.
# ARGS narrows it to mutant name globs: make mutate ARGS='server.store*'
MUTATE_JOBS ?= 2
mutate: setup $(MUTMUT)
	rm -rf mutants
	CHUNKWISE_HYPOTHESIS_PROFILE=mutate $(BIN)/mutmut run --max-children $(MUTATE_JOBS) $(ARGS)
	$(BIN)/python tests/mutation_score.py

# buf reads protos/buf.yaml (protos/ is the module root). `buf breaking` compares protos/ with
# the previous commit: no field renumbered, renamed or removed. A clone without HEAD~1 (a
# single commit, or shallow) skips that check and says so.
BREAKING_AGAINST := .git\#ref=HEAD~1,subdir=protos

lint: setup
	$(BIN)/ruff check server client tests bench
	$(BIN)/ruff format --check server client tests bench
	$(BIN)/mypy
	$(BIN)/buf lint protos
	$(BIN)/buf format -d --exit-code protos
	@if [ -d .git ] && git rev-parse --verify --quiet HEAD~1 >/dev/null; then \
		echo "$(BIN)/buf breaking protos --against '$(BREAKING_AGAINST)'"; \
		$(BIN)/buf breaking protos --against '$(BREAKING_AGAINST)'; \
	else \
		echo "buf breaking skipped: this clone has no previous commit (HEAD~1) to compare protos/ with"; \
	fi

# The Node client's tests (tests/interop/node) against a `python -m server` of their own on a
# free port. npm ci runs only when node_modules is missing or package-lock.json is newer.
NODE_INTEROP := tests/interop/node
NODE_MODULES := $(NODE_INTEROP)/node_modules/.package-lock.json

$(NODE_MODULES): $(NODE_INTEROP)/package-lock.json
	cd $(NODE_INTEROP) && npm ci --no-audit --no-fund
	touch $@

interop: setup $(NODE_MODULES)
	PYTHON=$(BIN)/python tests/interop/run-node.sh

clean:
	rm -rf $(VENV) $(STUBS) protos/chunkwise/v1/streaming_pb2.pyi .pytest_cache .hypothesis mutants
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
