# rillrpc: `make demo` runs the demo, `make test` runs every test. Both install what they
# need. Each part of the project adds its own targets in mk/<part>.mk.

SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TERM_COLOR ?= never
SHARED ?= $(abspath $(CURDIR)/../shared)
export RILL_SHARED := $(SHARED)

TEST_TARGETS := test-rust test-lint
DEMO_TARGETS :=

.PHONY: all demo test test-rust test-lint lint lint-tools bench
all: test

-include mk/*.mk

demo:
	cargo run --quiet --release -p rill-bench --bin demo

# `make test` first makes what the suites need besides the workspace's cargo build (peers
# built with Go, npm and pip packages, toolchains, apt packages, the fuzz targets' build in
# their own target dir) beside test-rust, so that downloads and Go builds fill the time cargo
# leaves idle instead of following it; then it runs the other suites one after another (they
# time things and share cores), printing how long each took. apt-get takes one lock, so the
# TEST_APT installs run one at a time.
TEST_APT := c-valgrind sanitize-clang browser-chromium faults-nginx
TEST_PREPARE := go-interop go-h2spec $(CONFORMANCE_RUNNER) $(KITEX_SERVER) matrix-go \
  matrix-connect-node $(BROWSER_DIR)/node_modules/.installed python-venv \
  fuzz-build sanitize-miri-install
.PHONY: test-apt test-prepare

test-apt:
	@for t in $(TEST_APT); do $(MAKE) --no-print-directory $$t || exit 1; done

test-prepare:
	$(MAKE) --no-print-directory $(TEST_PREPARE)

test:
	@$(MAKE) --no-print-directory go-check
	@set -e; all=$$SECONDS; s=$$SECONDS; \
	$(MAKE) --no-print-directory test-apt & apt=$$!; \
	$(MAKE) --no-print-directory test-prepare & prepare=$$!; \
	rc=0; $(MAKE) --no-print-directory test-rust || rc=1; \
	wait $$apt || rc=1; wait $$prepare || rc=1; [ $$rc -eq 0 ]; \
	echo "make test: test-rust passed, and the peers and tools were ready, in $$((SECONDS-s)) s"; \
	for t in $(filter-out test-rust,$(TEST_TARGETS)); do s=$$SECONDS; \
	  $(MAKE) --no-print-directory $$t; echo "make test: $$t passed in $$((SECONDS-s)) s"; done; \
	echo "make test: every suite passed ($(TEST_TARGETS)) in $$((SECONDS-all)) s"

# Every workspace test, rill-bench's included, in one invocation: with the workspace-hack crate
# (workspace-hack/Cargo.toml) a second one shared the dependencies' build anyway.
test-rust:
	cargo test --workspace

# The style's checks, in `make test` too (test-lint): formatting and clippy (the workspace's
# lints, undocumented unsafe blocks among them) for the workspace, the Python binding and the
# fuzz targets, which are workspaces of their own. The fuzz targets are checked on stable, in
# a target dir of their own (their lock file is their own).
lint: lint-tools
	cargo fmt --all -- --check
	cargo fmt --manifest-path bindings-python/Cargo.toml -- --check
	cargo fmt --manifest-path fuzz/Cargo.toml -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --manifest-path bindings-python/Cargo.toml --all-targets -- -D warnings
	cargo clippy --manifest-path fuzz/Cargo.toml --target-dir $(CARGO_TARGET_DIR)/fuzz-lint \
	  --bins -- -D warnings

test-lint: lint

# rustfmt and clippy are in rustup's default profile; a minimal one lacks them.
lint-tools:
	@command -v rustup >/dev/null || exit 0; have=$$(rustup component list --installed); \
	for c in rustfmt clippy; do echo "$$have" | grep -q "^$$c-" || rustup component add $$c; done

bench:
	cargo run --release -p rill-bench --bin bench
