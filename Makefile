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

.PHONY: setup serve test protos bench lint fuzz soak mutate interop interop-go-deps interop-go clean

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

# Metrics at http://127.0.0.1:9464/metrics; a --metrics-port in ARGS comes later and wins.
serve: setup
	$(BIN)/python -m server --metrics-port 9464 $(ARGS)

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

# The Node client's tests (tests/interop/node). npm ci runs only when node_modules is missing
# or package-lock.json is newer.
NODE_INTEROP := tests/interop/node
NODE_MODULES := $(NODE_INTEROP)/node_modules/.package-lock.json

$(NODE_MODULES): $(NODE_INTEROP)/package-lock.json
	cd $(NODE_INTEROP) && npm ci --no-audit --no-fund
	touch $@

# The Go client (tests/interop/go) builds in GOPATH mode from Debian's packages alone: no Go
# module proxy is reachable. protoc-gen-go (APIv2, 1.28) and protoc-gen-go-grpc (grpc-go 1.33)
# write the stubs; grpc-go's codec then needs golang/protobuf 1.5, which wraps APIv2 messages,
# and it is named here because apt would otherwise satisfy grpc-go with 1.3, which panics at the
# first message received. interop-go-deps runs apt-get (as root) only when one is missing.
GO_PACKAGES := golang-go protobuf-compiler golang-google-grpc-dev \
	golang-github-golang-protobuf-1-5-dev protoc-gen-go protoc-gen-go-grpc
GO_BUILD := build/interop-go
GO_STUBS := $(GO_BUILD)/src/chunkwise/v1/streaming.pb.go $(GO_BUILD)/src/chunkwise/v1/streaming_grpc.pb.go
GO_CLIENT := $(GO_BUILD)/bin/chunkwise-interop
GO_SOURCES := $(wildcard tests/interop/go/*.go)
# A build cache that outlives the clone where HOME allows, so a fresh clone compiles grpc-go once.
GOCACHE ?= $(if $(HOME),$(HOME)/.cache/go-build,$(CURDIR)/$(GO_BUILD)/cache)
GO_ENV := GO111MODULE=off GOFLAGS= GOPATH=$(CURDIR)/$(GO_BUILD):/usr/share/gocode GOCACHE=$(GOCACHE)

interop-go-deps:
	@missing=$$(for package in $(GO_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$package 2>/dev/null | grep -qx 'install ok installed' \
			|| echo $$package; \
	done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "Debian packages missing:" $$missing "(installing them needs root and apt-get)" >&2; \
		exit 1; \
	fi; \
	echo "installing from Debian's packages:" $$missing; \
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		-o DPkg::Lock::Timeout=300 --no-install-recommends $(GO_PACKAGES)

$(GO_STUBS) &: $(PROTO) | interop-go-deps
	mkdir -p $(GO_BUILD)/src
	protoc -Iprotos --go_out=$(GO_BUILD)/src --go-grpc_out=$(GO_BUILD)/src $(PROTO)

$(GO_CLIENT): $(GO_STUBS) $(GO_SOURCES) | interop-go-deps
	$(GO_ENV) go build -o $@ ./tests/interop/go

interop-go: $(GO_CLIENT)

# Both clients against one `python -m server` of their own on a free port.
interop: setup $(NODE_MODULES) $(GO_CLIENT)
	PYTHON=$(BIN)/python GO_CLIENT=$(GO_CLIENT) tests/interop/run.sh

clean:
	rm -rf $(VENV) $(STUBS) protos/chunkwise/v1/streaming_pb2.pyi .pytest_cache .hypothesis mutants
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
