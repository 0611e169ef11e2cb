# Python binding (bindings-python/): a venv with the peers and tools from PyPI, the package
# installed the way users install it (`pip install ./bindings-python`, a PEP 517 build with
# maturin), then pytest against grpcio and mypy stubtest against the built module.

PYTHON ?= python3
PY_DIR := $(CURDIR)/bindings-python
PY_VENV ?= $(PY_DIR)/.venv
PY_BIN := $(PY_VENV)/bin
PY_GEN := $(CARGO_TARGET_DIR)/rillrpc-python/gen
# The peer is pinned (grpcio, and grpcio-tools for protoc); the README names the version.
# thriftpy2 loads Thrift IDL at run time for rillrpc.thrift (tests/test_thrift.py).
PY_DEPS := maturin grpcio==1.85.1 grpcio-tools==1.85.1 protobuf pytest pytest-asyncio mypy uvloop trustme thriftpy2==0.7.1
# Tests use a debug build; `make bench-python` installs a release build.
PY_PROFILE ?= dev

TEST_TARGETS += test-python
.PHONY: test-python python-venv python-install python-gen bench-python

$(PY_BIN)/python:
	$(PYTHON) -m venv $(PY_VENV) || { \
	  (apt-get update && apt-get install -y python3-venv) && $(PYTHON) -m venv $(PY_VENV); }
	$(PY_BIN)/pip install --quiet --upgrade pip

python-venv: $(PY_BIN)/python
	$(PY_BIN)/pip install --quiet $(PY_DEPS)

# The package is reinstalled only when what it is built from changed, or the profile did:
# a reinstall replaces its files one by one, and a suite that needs the package
# (test-python, test-matrix, test-interop-python) could import it half-replaced while
# another one beside it reinstalled it (the flake campaign runs two suites at once).
# (Directories too: a file added or deleted changes its directory's time.)
PY_SOURCES = $(shell find $(PY_DIR)/src $(PY_DIR)/python $(CURDIR)/core \
  -path '$(CURDIR)/core/tests' -prune -o -print) $(PY_DIR)/Cargo.toml $(PY_DIR)/Cargo.lock \
  $(PY_DIR)/pyproject.toml $(CURDIR)/Cargo.toml
PY_INSTALLED = $(PY_VENV)/.rillrpc-installed-$(PY_PROFILE)

python-install: $(PY_INSTALLED)

$(PY_INSTALLED): $(PY_SOURCES) | python-venv
	rm -f $(PY_VENV)/.rillrpc-installed-*
	PATH="$(PY_BIN):$$PATH" MATURIN_PEP517_ARGS="--profile $(PY_PROFILE)" \
	  $(PY_BIN)/pip install --quiet --no-build-isolation --force-reinstall --no-deps ./bindings-python
	touch $@

python-gen: python-venv
	mkdir -p $(PY_GEN)
	$(PY_BIN)/python -m grpc_tools.protoc -I$(SHARED)/idl --python_out=$(PY_GEN) \
	  --grpc_python_out=$(PY_GEN) $(SHARED)/idl/echo.proto

# tests/test_coalesce.py runs rill-bench's echo-server and echo-client (debug) as peers;
# tests/test_thrift.py runs Kitex's kitex-server and kitex-client (mk/kitex.mk, read before
# this file: `mk/*.mk` is included in name order), found through RILL_KITEX_OUT.
test-python: python-install python-gen $(KITEX_SERVER) $(KITEX_CLIENT)
	@if $(MAKE) --no-print-directory -n python-install | grep -q -- --force-reinstall; then \
	  echo "test-python: python-install would reinstall the package it just installed"; exit 1; fi
	cargo build -p rill-bench --bin echo-server --bin echo-client
	cd $(PY_DIR) && RILL_PY_GEN=$(PY_GEN) RILL_KITEX_OUT=$(KITEX_OUT) $(PY_BIN)/python -m pytest -q -p no:cacheprovider tests
	cd $(CARGO_TARGET_DIR)/rillrpc-python && $(PY_BIN)/python -m mypy.stubtest rillrpc
	cd $(PY_DIR) && $(PY_BIN)/python -m mypy --cache-dir=$(CARGO_TARGET_DIR)/rillrpc-python/mypy-cache python/rillrpc

# PY_BASELINE=PYTHON: the python of a venv holding an older build's wheel (bench/README.md);
# bench/python/before_after.py then runs the bench with both builds in turn and prints
# before, after and the ratio. PY_BENCH_ARGS go to the script.
bench-python:
	$(MAKE) python-install python-gen PY_PROFILE=release
	cargo build --release -p rill-bench --bin echo-server
	-cargo build --release -p rill-bench --bin echo-client
	RILL_PY_GEN=$(PY_GEN) $(PY_BIN)/python bench/python/$(if $(PY_BASELINE),before_after.py --before $(PY_BASELINE),bench.py) \
	  --bin-dir $(CARGO_TARGET_DIR)/release $(PY_BENCH_ARGS)
