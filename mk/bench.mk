# rill-bench's Go peers (bench/go/): an echo-client and an echo-server, each grpc-go or
# connect-go (--impl), with the command line and RESULT line of
# bench/src/bin/echo-{client,server}.rs, built into $(BENCH_GO_BIN), where the bench runner
# looks for them. grpc-go and connect-go are pinned by bench/go/go.mod (grpc-go at the
# GRPC_GO_VERSION of mk/go.mk); the echo messages and codec are interop/matrix/go's, by a
# replace directive.
BENCH_GO_BIN ?= $(CARGO_TARGET_DIR)/bench-go

.PHONY: bench-go
bench-go: go-check
	mkdir -p $(BENCH_GO_BIN)
	cd $(CURDIR)/bench/go && for p in echo-client echo-server; do \
	  GOFLAGS=-mod=mod $(GO) build -buildvcs=false -o $(BENCH_GO_BIN)/$$p ./$$p || exit 1; done

# The runner builds them too (`make bench-go`), but only when it runs the mixed pairs or the
# protocols table.
bench: bench-go
