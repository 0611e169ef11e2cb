# Go peers, pinned, installed from the Go module proxy into $(GO_BIN) by the targets that need
# them: grpc-go's own interop client and server, and h2spec.
# h2spec: `@master` is refused by the proxy (403), and its v2 tags lack a /v2 module path, so
# the newest tag is taken as the proxy serves it, `+incompatible`.
GO ?= go
GRPC_GO_VERSION := v1.85.0
H2SPEC_VERSION := v2.2.1+incompatible
GO_BIN := $(CARGO_TARGET_DIR)/go-bin
GO_INTEROP_CLIENT := $(GO_BIN)/grpc-go-$(GRPC_GO_VERSION)/client
GO_INTEROP_SERVER := $(GO_BIN)/grpc-go-$(GRPC_GO_VERSION)/server
H2SPEC := $(GO_BIN)/h2spec-$(H2SPEC_VERSION)/h2spec

.PHONY: go-check go-pins go-interop go-h2spec

# The go.mod files that require grpc-go directly all pin GRPC_GO_VERSION: the interop client
# and server installed below, the grpc.testing descriptors our interop programs are built
# from, and the Go peers of the matrix and the benchmarks are one grpc-go.
GRPC_GO_MODS := interop/grpc-testing/go.mod interop/matrix/go/go.mod bench/go/go.mod
go-pins:
	@for m in $(GRPC_GO_MODS); do \
	  grep -Eq '^[[:space:]]*google\.golang\.org/grpc $(GRPC_GO_VERSION)$$' $$m || \
	    { echo "$$m does not pin google.golang.org/grpc $(GRPC_GO_VERSION) (GRPC_GO_VERSION, mk/go.mk)"; exit 1; }; \
	done

go-check:
	@command -v $(GO) >/dev/null || { \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq golang-go; }

$(GO_INTEROP_CLIENT) $(GO_INTEROP_SERVER): | go-check go-pins
	GOBIN=$(GO_BIN)/grpc-go-$(GRPC_GO_VERSION) $(GO) install \
		google.golang.org/grpc/interop/client@$(GRPC_GO_VERSION) \
		google.golang.org/grpc/interop/server@$(GRPC_GO_VERSION)

$(H2SPEC): | go-check
	GOBIN=$(GO_BIN)/h2spec-$(H2SPEC_VERSION) $(GO) install \
		github.com/summerwind/h2spec/cmd/h2spec@$(H2SPEC_VERSION)

go-interop: $(GO_INTEROP_CLIENT) $(GO_INTEROP_SERVER) | go-pins
go-h2spec: $(H2SPEC)

# grpc-go's test certificates (CA, server1 for *.test.google.fr), from its module source.
GO_GRPC_TESTDATA = $(shell $(GO) env GOMODCACHE)/google.golang.org/grpc@$(GRPC_GO_VERSION)/testdata
