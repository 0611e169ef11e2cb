# The cross-language matrix (interop/matrix/): every rillrpc client (rust, c, python, node), in
# each protocol (gRPC, gRPC-Web, Connect), against every server that speaks it (those four and
# the grpcio, grpc-js, grpc-go, tonic, connect-go and connect-node peers), and every peer client
# (connect-go in each of its protocols: Connect, gRPC-Web, gRPC) against every rillrpc server,
# six checks per cell; then the shape rules (a second table: UNIMPLEMENTED from every rillrpc
# client and server); then the thrift table: shared/idl/echo.thrift with real Kitex (v0.16.3,
# mk/kitex.mk's kitex-server and kitex-client) as a peer, every Thrift client (Kitex's, and
# rillrpc's rust, python, node and c) over Kitex's gRPC and TTHeader transports against every
# server of it (Kitex's, and rillrpc's rust, python and node), kitex-client's seven checks per
# cell. `make matrix` builds what it needs and prints the tables; `make test-matrix` is the
# same, failing if a cell fails.
MATRIX_DIR := $(CURDIR)/interop/matrix
MATRIX_BIN := $(CARGO_TARGET_DIR)/matrix-bin
# The echo messages are encoded by the examples' header (examples/c/echo_pb.h).
MATRIX_C_CFLAGS := -Wall -Wextra -Werror -std=c11 -D_POSIX_C_SOURCE=200809L -pthread -I$(CURDIR)/examples/c

TEST_TARGETS += test-matrix
.PHONY: matrix test-matrix matrix-build matrix-rust matrix-c matrix-go matrix-node-install \
  matrix-connect-node matrix-kitex

# The Rust client, the Rust server (rill-bench's echo-server --impl rill) and the tonic
# server (matrix-server-tonic).
matrix-rust:
	cargo build -p rill-matrix --bin matrix-client --bin matrix-server-tonic
	cargo build -p rill-bench --bin echo-server

matrix-c: c-lib
	mkdir -p $(MATRIX_BIN)
	export PKG_CONFIG_PATH=$(C_PREFIX)/lib/pkgconfig && for p in client server; do \
	  cc $(MATRIX_C_CFLAGS) $(MATRIX_DIR)/c/$$p.c -o $(MATRIX_BIN)/matrix-$$p-c \
	    $$(pkg-config --cflags --libs rillrpc) -Wl,-rpath,$(C_PREFIX)/lib || exit 1; done
	export PKG_CONFIG_PATH=$(C_PREFIX)/lib/pkgconfig && \
	  cc $(MATRIX_C_CFLAGS) $(MATRIX_DIR)/c/thrift_client.c -o $(MATRIX_BIN)/matrix-thrift-client-c \
	    $$(pkg-config --cflags --libs rillrpc) -Wl,-rpath,$(C_PREFIX)/lib

# grpc-go pinned by interop/matrix/go/go.mod (the GRPC_GO_VERSION of mk/go.mk), and so is
# connect-go (connectrpc.com/connect), whose client is connect-go-client and whose server is
# connect-go-server.
matrix-go: go-check
	mkdir -p $(MATRIX_BIN)
	cd $(MATRIX_DIR)/go && for p in client server; do \
	  GOFLAGS=-mod=mod $(GO) build -buildvcs=false -o $(MATRIX_BIN)/grpc-go-$$p ./$$p || exit 1; done
	cd $(MATRIX_DIR)/go && for p in client server; do \
	  GOFLAGS=-mod=mod $(GO) build -buildvcs=false -o $(MATRIX_BIN)/connect-go-$$p ./connect-$$p \
	  || exit 1; done

# The rillrpc npm package (a debug addon) with its devDependencies @grpc/grpc-js and
# @grpc/proto-loader, as mk/node.mk's test-node installs it.
matrix-node-install:
	cd $(CURDIR)/bindings-node && RILLRPC_BUILD=debug npm install --no-audit --no-fund

# connect-node's server (node/connect-server.mjs): @connectrpc/connect-node and its peers,
# pinned by interop/matrix/node/package-lock.json (npm ci, again when it changes).
$(MATRIX_DIR)/node/node_modules/.installed: $(MATRIX_DIR)/node/package-lock.json $(MATRIX_DIR)/node/package.json
	cd $(MATRIX_DIR)/node && npm ci --no-audit --no-fund
	touch $@

matrix-connect-node: $(MATRIX_DIR)/node/node_modules/.installed

# The thrift table's Kitex programs (kitex-server, kitex-client: mk/kitex.mk, read before this
# file) and the Rust ones of crate rill-kitex (kitex-echo-rill-server, kitex-echo-rill-client).
# The Python and Node servers and clients come with python-install and matrix-node-install
# (thriftpy2, thriftrw); the C client with matrix-c.
$(if $(KITEX_SERVER),,$(error mk/matrix.mk: KITEX_SERVER is not set; mk/kitex.mk must be read first))
matrix-kitex: $(KITEX_SERVER) $(KITEX_CLIENT) kitex-rill-build

matrix-build: matrix-rust matrix-c matrix-go matrix-node-install matrix-connect-node matrix-kitex \
  python-install python-gen

matrix: matrix-build
	RILL_PY_GEN=$(PY_GEN) $(PYTHON) $(MATRIX_DIR)/run.py --target-dir $(CARGO_TARGET_DIR) \
	  --kitex-dir $(KITEX_OUT) --python $(PY_BIN)/python $(MATRIX_ARGS)

test-matrix: matrix
