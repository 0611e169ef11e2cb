# Kitex peers (interop/kitex/README.md): kitex-server and kitex-client, real Kitex v0.16.3
# programs for shared/idl/echo.thrift, pinned by interop/kitex/go.mod and go.sum, with the
# generated code committed under interop/kitex/kitex_gen. Of these targets only test-kitex
# is part of `make test`.
#
#   make kitex-build            both programs and kitex-wiretap, into $(KITEX_OUT)
#   make kitex-selftest         kitex-client against kitex-server: pingpong, ttheader, grpc
#   make kitex-generate         regenerates interop/kitex/kitex_gen with the pinned kitex tool
#   make kitex-generate-check   fails if the committed kitex_gen differs from a fresh one
#   make kitex-wire             the wire captures behind interop/kitex/WIRE.md, into
#                               $(KITEX_OUT)/wire/<transport>-<check>.txt
#   make test-kitex             rillrpc against Kitex over gRPC with Thrift payloads, TTHeader
#                               Streaming and PingPong, both ways: kitex-client (StreamX and
#                               classic) against kitex-echo-rill-server, kitex-echo-rill-client
#                               against kitex-server (crate rill-kitex, interop/kitex/rust)
#   make bench-kitex            Kitex's client and ours (echo-client --codec thrift) against
#                               kitex-server and kitex-echo-rill-server (release), each
#                               transport and workload, in one run: rates and ratios, and
#                               the cores each side used
#
# The kitex tool is built from the module itself (go build .../tool/cmd/kitex, the same
# v0.16.3, with thriftgo v0.4.5 as a library: no thriftgo binary): `go install ...@v0.16.3`
# asks the proxy for the version list to check deprecation, which it refuses (403).
# GO and go-check come from mk/go.mk.

KITEX_VERSION := v0.16.3
KITEX_DIR := $(CURDIR)/interop/kitex
KITEX_OUT := $(CARGO_TARGET_DIR)/kitex
KITEX_IDL := $(SHARED)/idl/echo.thrift
KITEX_TOOL := $(KITEX_OUT)/kitex-tool-$(KITEX_VERSION)/kitex
KITEX_SERVER := $(KITEX_OUT)/kitex-server
KITEX_CLIENT := $(KITEX_OUT)/kitex-client
KITEX_WIRETAP := $(KITEX_OUT)/kitex-wiretap
KITEX_MODULE := rillrpc.dev/interop/kitex
KITEX_SOURCES = $(shell find $(KITEX_DIR) -name '*.go') $(KITEX_DIR)/go.mod $(KITEX_DIR)/go.sum

# The generation commands, run in $(KITEX_DIR) (README.md records them): the classic code
# (gRPC streaming interfaces) and the StreamX code (`-streamx`), side by side; and the
# protobuf code of shared/idl/echo.proto. The kitex tool wants a `go_package` option, which
# echo.proto (shared by every language) does not have: it reads a copy with one added.
KITEX_GEN_CLASSIC = $(KITEX_TOOL) -module $(KITEX_MODULE) -gen-path kitex_gen/classic $(KITEX_IDL)
KITEX_GEN_STREAMX = $(KITEX_TOOL) -module $(KITEX_MODULE) -streamx -gen-path kitex_gen/streamx $(KITEX_IDL)
KITEX_PROTO_COPY = $(KITEX_OUT)/idl/echo.proto
KITEX_GEN_PROTOBUF = $(KITEX_TOOL) -module $(KITEX_MODULE) -type protobuf -gen-path kitex_gen/protobuf \
  -I $(dir $(KITEX_PROTO_COPY)) $(KITEX_PROTO_COPY)
KITEX_GEN = $(KITEX_GEN_CLASSIC) && $(KITEX_GEN_STREAMX) && $(KITEX_GEN_PROTOBUF)

.PHONY: kitex-build kitex-selftest kitex-generate kitex-generate-check kitex-wire kitex-tool \
  kitex-rill-build test-kitex bench-kitex

$(KITEX_SERVER) $(KITEX_CLIENT) &: $(KITEX_SOURCES) | go-check
	mkdir -p $(KITEX_OUT)
	cd $(KITEX_DIR) && $(GO) build -buildvcs=false -o $(KITEX_OUT)/ ./kitex-server ./kitex-client

$(KITEX_WIRETAP): $(KITEX_SOURCES) | go-check
	mkdir -p $(KITEX_OUT)
	cd $(KITEX_DIR) && $(GO) build -buildvcs=false -o $@ ./wiretap

kitex-build: $(KITEX_SERVER) $(KITEX_CLIENT) $(KITEX_WIRETAP)

kitex-selftest: $(KITEX_SERVER) $(KITEX_CLIENT)
	$(KITEX_DIR)/scripts/selftest.sh $(KITEX_OUT)

$(KITEX_TOOL): $(KITEX_DIR)/go.mod $(KITEX_DIR)/go.sum | go-check
	mkdir -p $(dir $@)
	cd $(KITEX_DIR) && $(GO) build -buildvcs=false -o $@ github.com/cloudwego/kitex/tool/cmd/kitex

kitex-tool: $(KITEX_TOOL)

$(KITEX_PROTO_COPY): $(SHARED)/idl/echo.proto
	mkdir -p $(dir $@)
	{ cat $<; echo 'option go_package = "$(KITEX_MODULE)/kitex_gen/protobuf/echo";'; } > $@

kitex-generate: $(KITEX_TOOL) $(KITEX_PROTO_COPY)
	rm -rf $(KITEX_DIR)/kitex_gen
	cd $(KITEX_DIR) && $(KITEX_GEN)

# Generates into a scratch copy of the module (its go.mod alone) and compares.
kitex-generate-check: $(KITEX_TOOL) $(KITEX_PROTO_COPY)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	cp $(KITEX_DIR)/go.mod $$tmp/; \
	(cd $$tmp && $(KITEX_GEN)) >/dev/null; \
	if diff -r $$tmp/kitex_gen $(KITEX_DIR)/kitex_gen; then \
	  echo "kitex-generate-check: interop/kitex/kitex_gen is up to date"; \
	else \
	  echo "kitex-generate-check: interop/kitex/kitex_gen is stale: run make kitex-generate"; exit 1; \
	fi

kitex-wire: $(KITEX_SERVER) $(KITEX_CLIENT) $(KITEX_WIRETAP)
	$(KITEX_DIR)/scripts/capture.sh $(KITEX_OUT) $(KITEX_OUT)/wire

# The Rust side: Thrift over gRPC on the rillrpc core (interop/kitex/rust). Cargo decides
# what is stale, so this always runs (a no-op when nothing changed).
KITEX_RILL_BIN := $(CARGO_TARGET_DIR)/debug

# Warm (Go and Cargo builds up to date) the three runs take about a second.
TEST_TARGETS += test-kitex

kitex-rill-build:
	cargo build -p rill-kitex --bin kitex-echo-rill-server --bin kitex-echo-rill-client

# scripts/rill.sh fails if any check fails, or if a run passes none; it ends with a
# summary table.
test-kitex: $(KITEX_SERVER) $(KITEX_CLIENT) kitex-rill-build
	$(KITEX_DIR)/scripts/rill.sh $(KITEX_OUT) $(KITEX_RILL_BIN)

# Kitex's client drives both servers on the same work in the same run; prints a table.
bench-kitex: $(KITEX_SERVER) $(KITEX_CLIENT)
	cargo build --release -p rill-kitex --bin kitex-echo-rill-server
	cargo build --release -p rill-bench --bin echo-client
	$(KITEX_DIR)/scripts/bench.sh $(KITEX_OUT) $(CURDIR)/target/release
