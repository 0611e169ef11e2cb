# The Node binding (bindings-node/): `npm install` there builds the native addon from source
# with cargo (scripts/build.js) and installs the test peers (@grpc/grpc-js,
# @grpc/proto-loader); the suites run with `node --test`. Tests use a debug addon; the bench
# builds a release one. CARGO_TARGET_DIR is honoured. The Thrift API's peer, thriftrw, is a
# dev dependency here (an optional peer dependency of the package).

TEST_TARGETS += test-node
NODE_PKG := $(CURDIR)/bindings-node

.PHONY: test-node bench-node

# test/coalesce.test.js runs rill-bench's echo-server and echo-client (debug) as peers;
# test/thrift.test.js runs Kitex's kitex-server and kitex-client (mk/kitex.mk, included
# before this file) from RILL_KITEX_OUT.
test-node: $(KITEX_SERVER) $(KITEX_CLIENT)
	cd $(NODE_PKG) && RILLRPC_BUILD=debug npm install --no-audit --no-fund
	cargo build -p rill-bench --bin echo-server --bin echo-client
	cd $(NODE_PKG) && RILL_KITEX_OUT=$(KITEX_OUT) node --test --test-timeout=180000 test/client.test.js test/server.test.js test/tls.test.js test/protocol.test.js test/http_get.test.js test/coalesce.test.js test/thrift.test.js test/kitex_protobuf.test.js

# The Node rows of the bench: grpc-js and rillrpc clients against the tonic echo server,
# grpc-js and rillrpc servers driven by echo-client. NODE_BASELINE=DIR: another checkout's
# bindings-node with its addon built (`npm install` there), run as "rillrpc before" in the
# same rounds. NODE_BENCH_ARGS go to bench.js (--rounds, --duration).
bench-node:
	cargo build --release -p rill-bench --bin echo-server --bin echo-client
	cd $(NODE_PKG) && npm install --no-audit --no-fund
	node bench/node/bench.js $(if $(NODE_BASELINE),--baseline $(NODE_BASELINE)) $(NODE_BENCH_ARGS)
