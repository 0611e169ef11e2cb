# The Connect conformance suite (connectrpc.com/conformance, pinned by
# interop/conformance/go/go.mod) in server mode: its runner drives its reference clients
# (connect-go's and grpc-go's) against rill-conformance-server, ConformanceService on the
# rillrpc core, for every case that interop/conformance/server-config.yaml's features
# allow. Fails if the runner fails (a case failed, or a known-failing one passed) or if no
# case ran. The runner's output: $(CONFORMANCE_LOG).
#   interop/conformance/known-failing.txt: cases that fail for a named bug of the server
#   under test; an entry that starts passing fails the run, so the list only shrinks.
#   interop/conformance/retry-timeouts.sh: when only Timeouts cases failed, they run once
#   more and must pass then (the script says which client-side race it allows for).
#   CONFORMANCE_ARGS: more runner flags, e.g. --trace, or --run 'Basic/**' to try a few.
#   Not --known-failing: the runner (v1.0.7, argsToPatterns) keeps only the first @file
#   among a flag's values and drops the rest, so a pattern given here would be ignored.

CONFORMANCE_DIR := $(CURDIR)/interop/conformance
CONFORMANCE_OUT := $(CARGO_TARGET_DIR)/conformance
CONFORMANCE_RUNNER := $(CONFORMANCE_OUT)/connectconformance
CONFORMANCE_SERVER := $(CARGO_TARGET_DIR)/debug/rill-conformance-server
CONFORMANCE_LOG := $(CONFORMANCE_OUT)/server-mode.log
CONFORMANCE_ARGS ?=
CONFORMANCE_CLIENT := $(CARGO_TARGET_DIR)/debug/rill-conformance-client
CONFORMANCE_CLIENT_LOG := $(CONFORMANCE_OUT)/client-mode.log

TEST_TARGETS += test-conformance test-conformance-client
.PHONY: test-conformance test-conformance-client conformance-build

# Built once per pin: go.mod and go.sum are all it depends on.
$(CONFORMANCE_RUNNER): $(CONFORMANCE_DIR)/go/go.mod $(CONFORMANCE_DIR)/go/go.sum | go-check
	mkdir -p $(CONFORMANCE_OUT)
	cd $(CONFORMANCE_DIR)/go && GOFLAGS=-mod=mod $(GO) build -buildvcs=false -o $@ \
	  connectrpc.com/conformance/cmd/connectconformance

# The crate's build script takes the conformance protos from the module the runner was
# built from (go mod download, in the Go module cache).
conformance-build: $(CONFORMANCE_RUNNER)
	cargo build -p rill-conformance

test-conformance: conformance-build
	@set -o pipefail; rc=0; \
	cmd=(--mode server --conf $(CONFORMANCE_DIR)/server-config.yaml \
	  --known-failing @$(CONFORMANCE_DIR)/known-failing.txt -v $(CONFORMANCE_ARGS) \
	  -- $(CONFORMANCE_SERVER)); \
	echo "$(CONFORMANCE_RUNNER) $${cmd[*]}"; \
	$(CONFORMANCE_RUNNER) "$${cmd[@]}" 2>&1 | tee $(CONFORMANCE_LOG) || rc=$$?; \
	total=$$(sed -n 's/^Total cases: \([0-9][0-9]*\)$$/\1/p' $(CONFORMANCE_LOG)); \
	counts=$$(grep -E '^[0-9]+ passed, [0-9]+ failed' $(CONFORMANCE_LOG)); \
	echo "test-conformance: $${total:-0} cases, $${counts:-no result}"; \
	if [ "$$rc" -ne 0 ] && $(CONFORMANCE_DIR)/retry-timeouts.sh $(CONFORMANCE_LOG) \
	    $(CONFORMANCE_RUNNER) "$${cmd[@]}" 2>&1 | tee $(CONFORMANCE_LOG).retry; then \
	  echo "test-conformance: the failed Timeouts cases passed when run again"; rc=0; fi; \
	if [ "$$rc" -ne 0 ]; then echo "test-conformance: the runner failed (exit $$rc)"; exit 1; fi; \
	if [ "$${total:-0}" -eq 0 ]; then echo "test-conformance: no case ran"; exit 1; fi

# Client mode: the runner starts its reference servers (connect-go's, and grpc-go's for
# gRPC) and sends rill-conformance-client, the suite's client protocol on the rillrpc
# client, every case that interop/conformance/client-config.yaml's features allow.
# interop/conformance/client-known-failing.txt lists the cases that fail for a named bug
# of the client under test; CONFORMANCE_ARGS as above. The runner's output:
# $(CONFORMANCE_CLIENT_LOG).
test-conformance-client: conformance-build
	@set -o pipefail; rc=0; \
	cmd=(--mode client --conf $(CONFORMANCE_DIR)/client-config.yaml \
	  --known-failing @$(CONFORMANCE_DIR)/client-known-failing.txt -v $(CONFORMANCE_ARGS) \
	  -- $(CONFORMANCE_CLIENT)); \
	echo "$(CONFORMANCE_RUNNER) $${cmd[*]}"; \
	$(CONFORMANCE_RUNNER) "$${cmd[@]}" 2>&1 | tee $(CONFORMANCE_CLIENT_LOG) || rc=$$?; \
	total=$$(sed -n 's/^Total cases: \([0-9][0-9]*\)$$/\1/p' $(CONFORMANCE_CLIENT_LOG)); \
	counts=$$(grep -E '^[0-9]+ passed, [0-9]+ failed' $(CONFORMANCE_CLIENT_LOG)); \
	echo "test-conformance-client: $${total:-0} cases, $${counts:-no result}"; \
	if [ "$$rc" -ne 0 ]; then echo "test-conformance-client: the runner failed (exit $$rc)"; exit 1; fi; \
	if [ "$${total:-0}" -eq 0 ]; then echo "test-conformance-client: no case ran"; exit 1; fi
