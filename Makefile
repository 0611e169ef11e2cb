# rillrpc: `make demo` runs the demo, `make test` runs every test. Both install what they
# need. Each part of the project adds its own targets in mk/<part>.mk.

SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TERM_COLOR ?= never
SHARED ?= $(abspath $(CURDIR)/../shared)
export RILL_SHARED := $(SHARED)

TEST_TARGETS := test-rust
DEMO_TARGETS :=

.PHONY: all demo test test-rust lint bench
all: test

-include mk/*.mk

demo:
	cargo run --quiet --release -p rill-bench --bin demo

test: $(TEST_TARGETS)
	@echo "make test: every suite passed ($(TEST_TARGETS))"

test-rust:
	cargo test --workspace --exclude rill-bench
	cargo test -p rill-bench

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench:
	cargo run --release -p rill-bench --bin bench
